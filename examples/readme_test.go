package examples_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The READMEs whose Go snippets must run.
var readmes = []string{"../README.md", "../pkg/events/README.md"}

// Where the code that runs them lives: the _test.go files of these trees
// (both run by make test: examples in the root module, pkg/events in its own).
var snippetSources = []string{".", "../pkg/events"}

// TestREADMESnippetsRun fails when a ```go block of README.md or
// pkg/events/README.md is not, whitespace-normalised, part of the text of
// runnable test code: one Test function, an Example function with an
// "// Output:" comment (go test runs and checks it), or several such
// functions that follow one another in a file. Files with build
// constraints are not considered (a tagged test may not run). So a snippet
// that drifts from the code, or whose code stops compiling or running, fails
// here or in the test that contains it.
func TestREADMESnippetsRun(t *testing.T) {
	runnable := runnableCode(t)
	if len(runnable) == 0 {
		t.Fatal("no runnable test code found")
	}
	for _, readme := range readmes {
		snippets := goSnippets(t, readme)
		if len(snippets) == 0 {
			t.Errorf("%s: no ```go snippet found (the README test checks nothing)", readme)
		}
		for _, s := range snippets {
			want := normalise(s.code)
			found := ""
			for _, r := range runnable {
				if strings.Contains(r.text, want) {
					found = r.where
					break
				}
			}
			if found == "" {
				t.Errorf("%s:%d: this ```go snippet is not the text of a test or example that runs; copy it from one "+
					"(pkg/events/example_readme_test.go holds the README examples):\n%s", readme, s.line, s.code)
				continue
			}
			t.Logf("%s:%d runs in %s", readme, s.line, found)
		}
	}
}

// The extractor and the matcher themselves: a changed snippet, one from a
// function that does not run, and one spanning a non-runnable function are
// all refused.
func TestREADMESnippetMatcher(t *testing.T) {
	dir := t.TempDir()
	src := `package x_test

import "fmt"

func ExampleRuns() {
	fmt.Println("a",
		"b")
	// Output: a b
}

func TestRuns(t *testing.T) {
	t.Log("runs")
}

func ExampleNoOutput() {
	fmt.Println("never checked")
}

func helper() int { return 42 }

func TestLast(t *testing.T) {
	t.Log("last")
}
`
	if err := os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tagged := "//go:build chaos\n\npackage x_test\n\nfunc TestTagged(t *testing.T) { t.Log(\"tagged\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "y_test.go"), []byte(tagged), 0o644); err != nil {
		t.Fatal(err)
	}
	runnable := runnableCodeIn(t, []string{dir})
	matches := func(snippet string) bool {
		for _, r := range runnable {
			if strings.Contains(r.text, normalise(snippet)) {
				return true
			}
		}
		return false
	}
	for snippet, want := range map[string]bool{
		"fmt.Println(\"a\", \"b\")":                          true,  // whitespace differs only
		"fmt.Println(\"a\",\n    \"b\")":                     true,  // README indentation
		"fmt.Println(\"a\", \"c\")":                          false, // changed
		"fmt.Println(\"never checked\")":                     false, // example without output
		"func helper() int { return 42 }":                    false, // not a test
		"t.Log(\"runs\")":                                    true,
		"t.Log(\"tagged\")":                                  false, // build-tagged file
		"// Output: a b\n}\n\nfunc TestRuns(t *testing.T) {": true,  // consecutive runnable functions
		"return 42 }\n\nfunc TestLast(t *testing.T) {":       false, // spans a helper
	} {
		if got := matches(snippet); got != want {
			t.Errorf("snippet %q matched %v, want %v", snippet, got, want)
		}
	}
	readme := filepath.Join(dir, "README.md")
	md := "# x\n\n```go\nfmt.Println(\"a\", \"b\")\n```\n\n```sh\nls\n```\n\n  ```go\n  t.Log(\"runs\")\n  ```\n"
	if err := os.WriteFile(readme, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	got := goSnippets(t, readme)
	if len(got) != 2 || got[0].line != 3 || got[1].line != 11 || !matches(got[0].code) || !matches(got[1].code) {
		t.Errorf("snippets %+v", got)
	}
}

type snippet struct {
	line int // of the opening fence
	code string
}

var fence = regexp.MustCompile("^\\s*```")

// goSnippets returns the ```go blocks of a Markdown file.
func goSnippets(t *testing.T, path string) []snippet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []snippet
	var cur *snippet
	var code []string
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && fence.MatchString(line) && strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "`")) == "go":
			cur, code = &snippet{line: i + 1}, nil
		case cur != nil && fence.MatchString(line):
			cur.code = strings.Join(code, "\n")
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			code = append(code, line)
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated ```go block", path, cur.line)
	}
	return out
}

var space = regexp.MustCompile(`\s+`)

func normalise(s string) string { return strings.TrimSpace(space.ReplaceAllString(s, " ")) }

type code struct {
	where string // file and functions
	text  string // normalised
}

func runnableCode(t *testing.T) []code {
	return runnableCodeIn(t, snippetSources)
}

// runnableCodeIn returns, for every untagged _test.go file under roots, the
// normalised text of each run of consecutive runnable functions (Test*
// functions, and Example* functions that have an output comment).
func runnableCodeIn(t *testing.T, roots []string) []code {
	t.Helper()
	var out []code
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
			if err != nil {
				return err
			}
			if hasBuildConstraint(f) {
				return nil
			}
			withOutput := map[string]bool{}
			for _, ex := range doc.Examples(f) {
				if ex.Output != "" || ex.EmptyOutput {
					withOutput[exampleFunc(ex)] = true
				}
			}
			var run []*ast.FuncDecl
			flush := func() {
				if len(run) == 0 {
					return
				}
				text := func(from, to *ast.FuncDecl) string {
					return normalise(string(src[fset.Position(from.Pos()).Offset:fset.Position(to.End()).Offset]))
				}
				names := make([]string, len(run))
				for i, fn := range run {
					names[i] = fn.Name.Name
					out = append(out, code{where: path + " " + fn.Name.Name, text: text(fn, fn)})
				}
				if len(run) > 1 { // a snippet may span consecutive runnable functions
					out = append(out, code{where: path + " " + strings.Join(names, ","), text: text(run[0], run[len(run)-1])})
				}
				run = nil
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if ok && fn.Recv == nil && (isTest(fn) || withOutput[fn.Name.Name]) {
					run = append(run, fn)
					continue
				}
				flush()
			}
			flush()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// exampleFunc is the name of the function an example comes from:
// Example, ExampleF, ExampleT_M, each optionally followed by _suffix.
func exampleFunc(ex *doc.Example) string {
	name := "Example" + ex.Name
	if ex.Suffix != "" {
		name += "_" + ex.Suffix
	}
	return name
}

func isTest(fn *ast.FuncDecl) bool {
	name := fn.Name.Name
	if !strings.HasPrefix(name, "Test") || name == "TestMain" || fn.Type.Params == nil || len(fn.Type.Params.List) != 1 {
		return false
	}
	star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "T"
}

func hasBuildConstraint(f *ast.File) bool {
	for _, g := range f.Comments {
		if g.Pos() >= f.Package {
			break
		}
		for _, c := range g.List {
			if strings.HasPrefix(c.Text, "//go:build") || strings.HasPrefix(c.Text, "// +build") {
				return true
			}
		}
	}
	return false
}
