/* httpstats.c - the HTTP proxying counters and the refusal pages (httpstats.h). */
#include "relay/http/httpstats.h"

struct tt_httpstats tt_httpstats;

enum tt_page tt_httpstats_page(enum tt_http_refusal reason)
{
    switch (reason) {
    case TT_REFUSAL_TOO_LARGE:
        return TT_PAGE_TOO_LARGE;
    case TT_REFUSAL_URI_TOO_LONG:
        return TT_PAGE_URI_TOO_LONG;
    case TT_REFUSAL_CODING:
        return TT_PAGE_NOT_IMPLEMENTED;
    default:
        return TT_PAGE_BAD_REQUEST;
    }
}

enum tt_page tt_httpstats_refuse(enum tt_http_refusal reason)
{
    if ((unsigned)reason >= TT_REFUSAL_COUNT)
        reason = TT_REFUSAL_NONE;
    tt_httpstats.refused[reason]++;
    return tt_httpstats_page(reason);
}
