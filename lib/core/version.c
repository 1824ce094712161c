#include "convvae.h"

#define CVAE__STR2(x) #x
#define CVAE__STR(x) CVAE__STR2(x)

const char *cvae_version_string(void)
{
    return CVAE__STR(CVAE_VERSION_MAJOR) "." CVAE__STR(CVAE_VERSION_MINOR) "." CVAE__STR(
        CVAE_VERSION_PATCH);
}

uint32_t cvae_version_number(void) { return (uint32_t)CVAE_VERSION_NUMBER; }
