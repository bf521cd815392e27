// Package bench holds the lab benchmark: pitasks' real engine and drivers deploying 1, 5 and
// 20 nodes of the virtual Pi lab at once, against a plain `ssh node 'dd …' < image` baseline
// run on the same nodes and links in the same run. See run.sh and ../BENCHMARKS.md.
package bench
