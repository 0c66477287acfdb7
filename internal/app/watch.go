package app

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce gathers the burst of events one save makes (editors write,
// rename and chmod) into one reload.
const debounce = 250 * time.Millisecond

// k8sDataLink is the symlink the kubelet swaps atomically to update every
// file of a ConfigMap or Secret volume at once.
const k8sDataLink = "..data"

// watchFiles reports, debounced, the path of a change to any of paths: a
// file, or a directory and everything below it. Directories holding watched
// files are watched rather than the files, so a save by rename is seen.
func watchFiles(ctx context.Context, paths []string, log *slog.Logger) (<-chan string, error) {
	out := make(chan string)
	if len(paths) == 0 {
		return out, nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return out, err
	}
	var files, dirs []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		st, err := os.Stat(abs)
		if err == nil && st.IsDir() {
			dirs = append(dirs, abs)
			_ = filepath.WalkDir(abs, func(d string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					if err := w.Add(d); err != nil {
						log.Warn("cannot watch", "dir", d, "error", err)
					}
				}
				return nil
			})
			continue
		}
		files = append(files, abs)
		if err := w.Add(filepath.Dir(abs)); err != nil {
			log.Warn("cannot watch", "dir", filepath.Dir(abs), "error", err)
		}
	}
	relevant := func(name string) bool {
		for _, f := range files {
			if name == f {
				return true
			}
			// Kubernetes updates a ConfigMap or Secret volume by renaming
			// a new ..data symlink over the old one; the files themselves
			// are symlinks through ..data and see no event of their own.
			if filepath.Base(name) == k8sDataLink && filepath.Dir(name) == filepath.Dir(f) {
				return true
			}
		}
		for _, d := range dirs {
			if name == d || strings.HasPrefix(name, d+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}
	go func() {
		defer w.Close()
		var timer <-chan time.Time
		var pending string
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !relevant(ev.Name) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
						_ = w.Add(ev.Name) // a new directory inside a bundle
					}
				}
				pending = ev.Name
				timer = time.After(debounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("file watch error", "error", err)
			case <-timer:
				timer = nil
				select {
				case out <- pending:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
