set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y 2
set grid ytics
set key outside right top vertical
set xtics rotate by -35 font ',10'
set multiplot layout 3,1 title 'AMD EPYC, 2 CPUs, 2026-12-02 18:46 UTC, median of 5 interleaved rounds' font ',11'
set title 'speed relative to glibc, wall clock (higher is better)'
set ylabel '× glibc (log scale)'
set yrange [0.08839:19.03]
plot 'bench/results/chart.dat' using 2:xtic(1) title 'glibc' lc rgb '#9e9e9e', \
     'bench/results/chart.dat' using 3:xtic(1) title 'jemalloc' lc rgb '#1f77b4', \
     'bench/results/chart.dat' using 4:xtic(1) title 'tcmalloc' lc rgb '#2ca02c', \
     'bench/results/chart.dat' using 5:xtic(1) title 'mimalloc-v3' lc rgb '#ff7f0e', \
     'bench/results/chart.dat' using 6:xtic(1) title 'mimalloc-v2' lc rgb '#ffbb78', \
     'bench/results/chart.dat' using 7:xtic(1) title 'snmalloc' lc rgb '#9467bd', \
     'bench/results/chart.dat' using 8:xtic(1) title 'arenalloc' lc rgb '#d62728', \
     'bench/results/chart.dat' using 9:xtic(1) title 'pymalloc' lc rgb '#8c564b', 1 notitle dt 2 lc rgb '#000000'

set title 'speed relative to glibc, per CPU second (higher is better)'
set ylabel '× glibc (log scale)'
set yrange [0.08839:9.514]
plot 'bench/results/chart.dat' using 18:xtic(1) title 'glibc' lc rgb '#9e9e9e', \
     'bench/results/chart.dat' using 19:xtic(1) title 'jemalloc' lc rgb '#1f77b4', \
     'bench/results/chart.dat' using 20:xtic(1) title 'tcmalloc' lc rgb '#2ca02c', \
     'bench/results/chart.dat' using 21:xtic(1) title 'mimalloc-v3' lc rgb '#ff7f0e', \
     'bench/results/chart.dat' using 22:xtic(1) title 'mimalloc-v2' lc rgb '#ffbb78', \
     'bench/results/chart.dat' using 23:xtic(1) title 'snmalloc' lc rgb '#9467bd', \
     'bench/results/chart.dat' using 24:xtic(1) title 'arenalloc' lc rgb '#d62728', \
     'bench/results/chart.dat' using 25:xtic(1) title 'pymalloc' lc rgb '#8c564b', 1 notitle dt 2 lc rgb '#000000'

set title 'peak RSS relative to glibc (lower is better)'
set ylabel '× glibc (log scale)'
set yrange [0.3536:4.757]
plot 'bench/results/chart.dat' using 10:xtic(1) title 'glibc' lc rgb '#9e9e9e', \
     'bench/results/chart.dat' using 11:xtic(1) title 'jemalloc' lc rgb '#1f77b4', \
     'bench/results/chart.dat' using 12:xtic(1) title 'tcmalloc' lc rgb '#2ca02c', \
     'bench/results/chart.dat' using 13:xtic(1) title 'mimalloc-v3' lc rgb '#ff7f0e', \
     'bench/results/chart.dat' using 14:xtic(1) title 'mimalloc-v2' lc rgb '#ffbb78', \
     'bench/results/chart.dat' using 15:xtic(1) title 'snmalloc' lc rgb '#9467bd', \
     'bench/results/chart.dat' using 16:xtic(1) title 'arenalloc' lc rgb '#d62728', \
     'bench/results/chart.dat' using 17:xtic(1) title 'pymalloc' lc rgb '#8c564b', 1 notitle dt 2 lc rgb '#000000'

unset multiplot
