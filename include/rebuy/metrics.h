/*
 * metrics.h — Prometheus counters and histograms, lock-free.
 */
#ifndef REBUY_METRICS_H
#define REBUY_METRICS_H

#include <stddef.h>

/* route_index -1 = unmatched. */
void metrics_observe(int route_index, unsigned status, double seconds);

/* Render the text exposition format; caller frees. */
char *metrics_render(size_t *len);

#endif
