# lib.sh — what the benchmark scripts share (sourced, not run).
#
# median: the median of the numbers on standard input, one per line (for an
# even count, the mean of the two in the middle); "nan" when there are none.
median() {
	sort -g | awk '{ a[NR] = $1 }
		END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# cluster_cpu_ms NAME: CPU time (user and system, ms) used so far by cluster
# NAME of scripts/cluster.sh: its postmaster, the children it has reaped
# (ended backends count there) and the children alive now.
cluster_cpu_ms() {
	local pid ticks
	pid=$(head -1 "$CLUSTER_ROOT/$1/postmaster.pid")
	ticks=$(getconf CLK_TCK)
	{
		awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat"
		for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
			awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$child/stat" 2>/dev/null
		done
	} | awk -v hz="$ticks" '{ s += $1 } END { printf "%d", s * 1000 / hz }'
}
