/*
 * xmlrpc.h - the XML-RPC text XAPI uses for task results.
 *
 * A task's `result` field holds its return value as an XML-RPC <value>
 * element ("<value>OpaqueRef:...</value>"), "" for a void result. Clients
 * (the xen-api npm package, XenAPI.py, xe) parse it; we produce it from the
 * JSON value the synchronous call would have returned.
 */
#ifndef XMLRPC_H
#define XMLRPC_H

#include <jansson.h>

/* malloc'ed XML-RPC text of v; "" for NULL / JSON null. */
char *xmlrpc_value(const json_t *v);
/* Parse the text of a <value> holding a plain string (a ref, a uuid).
 * malloc'ed string, or NULL when the text is not a simple string value. */
char *xmlrpc_string(const char *text);

#endif
