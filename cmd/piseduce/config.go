package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// login is what `piseduce login` keeps: the site and the API token it got there.
type login struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configDir is $XDG_CONFIG_HOME/piseduce, else ~/.config/piseduce.
func (a *app) configDir() (string, error) {
	if d := a.getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "piseduce"), nil
	}
	home := a.getenv("HOME")
	if home == "" {
		return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the login")
	}
	return filepath.Join(home, ".config", "piseduce"), nil
}

const loginFile = "login.json"

// saveLogin writes the login, readable by its owner only (the token opens their account).
func (a *app) saveLogin(l login) (string, error) {
	dir, err := a.configDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// MkdirAll keeps the mode of a folder that exists: tighten it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, loginFile)
	tmp, err := os.CreateTemp(dir, loginFile+".*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes it 0600; Chmod anyway, so that no umask or future change loosens it.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// errNotLoggedIn: no login is kept.
var errNotLoggedIn = errors.New("not logged in: run piseduce login --url http://PIMASTER:9000 first")

// loadLogin reads the login; one that others may read or write is refused (its token may be
// known, or replaced, by them).
func (a *app) loadLogin() (login, string, error) {
	var l login
	dir, err := a.configDir()
	if err != nil {
		return l, "", err
	}
	path := filepath.Join(dir, loginFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, path, errNotLoggedIn
	}
	if err != nil {
		return l, path, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return l, path, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return l, path, fmt.Errorf("%s is readable or writable by others (mode %04o): its token may be known; "+
			"run chmod 600 %s, or log in again", path, perm, path)
	}
	if err := json.NewDecoder(f).Decode(&l); err != nil || l.URL == "" || l.Token == "" {
		return l, path, fmt.Errorf("%s is not a piseduce login (%v): log in again", path, err)
	}
	return l, path, nil
}
