/*
 * days.h — calendar dates as day numbers (days since 1970-01-01, proleptic
 * Gregorian; Howard Hinnant's algorithms): the metrics' date arithmetic
 * and the exports' instants share them.
 */
#ifndef REBUY_DAYS_H
#define REBUY_DAYS_H

/* the day number of y-m-d */
long days_from_civil(long y, unsigned m, unsigned d);

/* the date of day number z */
void civil_from_days(long z, int *y, unsigned *m, unsigned *d);

#endif
