package piseduce_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// errorTextAllowed are the functions that may read an error's text, by file and function,
// each for a reason written where it is.
var errorTextAllowed = map[string]bool{
	// gosnmp makes some of its errors with no sentinel to match (see its comment).
	"pkg/power/snmp.go:gosnmpSays": true,
}

// TestNoErrorTextMatching: errors carry their kind (sentinels, types: errors.Is and
// errors.As); no production code decides anything by the text of an error, whose wording may
// change at any time. Tests may read messages (they check that errors say something useful).
func TestNoErrorTextMatching(t *testing.T) {
	var found []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, m := range errorTextMatches(src) {
			if !errorTextAllowed[filepath.ToSlash(path)+":"+m.fn] {
				found = append(found, filepath.ToSlash(path)+": "+m.what+" in "+m.fn)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: match the error's kind (errors.Is/As with a sentinel or type), not its text", f)
	}
}

// TestErrorTextMatchesFound: the scan finds every form it looks for.
func TestErrorTextMatchesFound(t *testing.T) {
	const src = `package x
func a(err error) bool { return strings.Contains(err.Error(), "remote: ") }
func b(err error) bool { return err.Error() == "EOF" }
func c(err error) bool { return re.MatchString(err.Error()) }
func d(err error) bool { switch err.Error() { case "x": return true }; return false }
func e(err error) bool { return strings.HasPrefix(fmt.Sprint(err), "x") || errors.Is(err, io.EOF) }
func f(err error) string { return "failed: " + strings.TrimPrefix(err.Error(), "store: ") }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fns []string
	for _, m := range errorTextMatches(f) {
		fns = append(fns, m.fn)
	}
	if got := strings.Join(fns, ","); got != "a,b,c,d" {
		t.Errorf("matches found in %s, want a,b,c,d (e matches no Error() call, f only formats it)", got)
	}
}

type errorTextMatch struct{ fn, what string }

// matchFuncs are the strings and bytes functions that decide something from a text (the
// others, TrimPrefix…, only reword it).
var matchFuncs = map[string]bool{"Contains": true, "ContainsAny": true, "ContainsRune": true, "ContainsFunc": true,
	"HasPrefix": true, "HasSuffix": true, "Index": true, "IndexAny": true, "IndexByte": true, "IndexRune": true,
	"LastIndex": true, "EqualFold": true, "Equal": true, "Count": true, "Cut": true, "CutPrefix": true, "CutSuffix": true}

// errorTextMatches finds err.Error() given to a strings/bytes function or a regexp, compared
// with == or !=, or switched on.
func errorTextMatches(f *ast.File) []errorTextMatch {
	var out []errorTextMatch
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, _ := sel.X.(*ast.Ident)
				textFunc := pkg != nil && (pkg.Name == "strings" || pkg.Name == "bytes") && matchFuncs[sel.Sel.Name]
				regexpFunc := strings.HasPrefix(sel.Sel.Name, "Match") || strings.HasPrefix(sel.Sel.Name, "Find")
				if !textFunc && !regexpFunc {
					return true
				}
				for _, a := range n.Args {
					if isErrorCall(a) {
						out = append(out, errorTextMatch{fd.Name.Name, exprName(sel) + "(….Error())"})
					}
				}
			case *ast.BinaryExpr:
				if (n.Op == token.EQL || n.Op == token.NEQ) && (isErrorCall(n.X) || isErrorCall(n.Y)) {
					out = append(out, errorTextMatch{fd.Name.Name, "….Error() " + n.Op.String()})
				}
			case *ast.SwitchStmt:
				if n.Tag != nil && isErrorCall(n.Tag) {
					out = append(out, errorTextMatch{fd.Name.Name, "switch ….Error()"})
				}
			}
			return true
		})
	}
	return out
}

// isErrorCall reports whether e is x.Error(), wrapped in anything that keeps its text
// (string(…), a conversion to []byte, parentheses).
func isErrorCall(e ast.Expr) bool {
	for {
		switch x := e.(type) {
		case *ast.ParenExpr:
			e = x.X
			continue
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" && len(x.Args) == 0 {
				return true
			}
			if len(x.Args) == 1 { // a conversion, strings.ToLower(…), …
				if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "string") {
					e = x.Args[0]
					continue
				}
				if _, ok := x.Fun.(*ast.ArrayType); ok {
					e = x.Args[0]
					continue
				}
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "ToLower" || sel.Sel.Name == "ToUpper" || sel.Sel.Name == "TrimSpace") {
					e = x.Args[0]
					continue
				}
			}
		}
		return false
	}
}

func exprName(sel *ast.SelectorExpr) string {
	if id, ok := sel.X.(*ast.Ident); ok {
		return id.Name + "." + sel.Sel.Name
	}
	return "…." + sel.Sel.Name
}
