/* version.h - the product version, compared by the version rules. */
#ifndef VERSION_H
#define VERSION_H
#define POOLD_PRODUCT "poold"
#define POOLD_VERSION "0.1.0"
#define POOLD_API_MAJOR 2
#define POOLD_API_MINOR 21
#endif
