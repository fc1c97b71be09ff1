/* version.h - the product version, compared by the version rules. */
#ifndef VERSION_H
#define VERSION_H
#define POOLD_PRODUCT "poold"
#define POOLD_VERSION "0.1.0"
#define POOLD_API_MAJOR 2
#define POOLD_API_MINOR 21
/* software_version's platform_version: the XAPI platform whose API (2.21)
 * this serves, XenServer 8's; clients (Xen Orchestra) choose their code
 * paths by it. build_number: this build. */
#define POOLD_PLATFORM_VERSION "3.4.0"
#define POOLD_BUILD_NUMBER POOLD_VERSION
#endif
