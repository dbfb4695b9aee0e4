# lib.sh — what the benchmark scripts share (sourced, not run).
#
# median: the median of the numbers on standard input, one per line (for an
# even count, the mean of the two in the middle); "nan" when there are none.
median() {
	sort -g | awk '{ a[NR] = $1 }
		END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
