/* err.c - names and descriptions of the Tether error codes, generated from TETHER_ERR_MAP in
 * include/tether_err.h. Pure lookups over static strings; no allocation, no state. */
#include "tether_err.h"

const char *tether_err_name(int err)
{
    switch (err) {
    case TETHER_OK:
        return "TETHER_OK";
#define TT_ERR_NAME_(name, value, text)                                                            \
    case TETHER_ERR_##name:                                                                        \
        return "TETHER_ERR_" #name;
        TETHER_ERR_MAP(TT_ERR_NAME_)
#undef TT_ERR_NAME_
    default:
        return "TETHER_ERR_UNKNOWN";
    }
}

const char *tether_strerror(int err)
{
    switch (err) {
    case TETHER_OK:
        return "success";
#define TT_ERR_TEXT_(name, value, text)                                                            \
    case TETHER_ERR_##name:                                                                        \
        return text;
        TETHER_ERR_MAP(TT_ERR_TEXT_)
#undef TT_ERR_TEXT_
    default:
        return "unknown error";
    }
}

bool tether_err_is_fatal(int err)
{
    /* Unknown negative codes are treated as fatal: a caller cannot retry what it cannot name. */
    return err < 0 && err != TETHER_ERR_AGAIN;
}
