package store

import "sort"

// NameLess orders names by their trailing number, as the original sorted its nodes:
// node-2 before node-10. Every list ordered by name uses it.
func NameLess(a, b string) bool {
	ta, na := splitNum(a)
	tb, nb := splitNum(b)
	if ta != tb || na == nb {
		return a < b
	}
	return na < nb
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n := 0
	for _, c := range s[i:] {
		n = n*10 + int(c-'0')
		if n > 1e9 {
			break
		}
	}
	return s[:i], n
}

// sortByName sorts list by the name of each element in natural order (node-2 before node-10),
// keeping the order of equal names.
func sortByName[T any](list []T, name func(T) string) {
	sort.SliceStable(list, func(i, j int) bool { return NameLess(name(list[i]), name(list[j])) })
}
