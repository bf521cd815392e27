package process

import "github.com/piseduce/piseduce/pkg/usedmap"

// Step data: what a process's steps keep from one state for a later one (a checksum from the
// copy for the check). Each process that keeps some has its own type (Process.NewData); the
// engine alone reads it from the deployment and writes it back, the steps get and change it
// through engine.Data. What a user asked for (a deployment's options, the name of the
// environment to save) is the request's, in its own columns: the web never writes step data.

// DeployData is what deploy's env_copy leaves for env_check: the raw image sent to the card.
type DeployData struct {
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Written are the only ranges of the image env_copy wrote, its file systems' used ones;
	// none: all of it.
	Written []usedmap.Range `json:"written,omitempty"`
}

// SaveEnvData is what save_env's img_copy leaves for img_check: the image file in img_dir, its
// format, and the raw card bytes it holds (size, sha256, where the root partition starts).
type SaveEnvData struct {
	File      string `json:"file,omitempty"`
	Format    string `json:"format,omitempty"`
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	RootStart int64  `json:"root_start,omitempty"`
}

// newData returns a func making a new T, for Process.NewData.
func newData[T any]() func() any { return func() any { return new(T) } }
