// Package piseduce holds the files embedded in the binaries: the web's templates and static files.
package piseduce

import "embed"

// Assets holds templates/ (html/template pages) and static/ (CSS, JavaScript, images).
//
//go:embed templates static
var Assets embed.FS
