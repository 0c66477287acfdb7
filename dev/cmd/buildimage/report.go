package main

import (
	"fmt"
	"io"
	"time"
)

// report is what was built: printed, and written by --metadata as JSON.
type report struct {
	Digest    string           `json:"digest"`              // what a client pulls: the index, or the single image
	MediaType string           `json:"mediaType"`           // of that manifest
	Reference string           `json:"reference,omitempty"` // repository@digest, after --push
	Version   string           `json:"version,omitempty"`
	Revision  string           `json:"revision,omitempty"`
	Created   string           `json:"created"`
	Images    []platformReport `json:"images"`
}

type platformReport struct {
	Platform string        `json:"platform"`
	Digest   string        `json:"digest"`
	Size     int64         `json:"size"` // manifest, config and layers as stored (compressed)
	Layers   []layerReport `json:"layers"`
}

type layerReport struct {
	Digest       string `json:"digest"`
	Size         int64  `json:"size"`         // compressed
	Uncompressed int64  `json:"uncompressed"` // the tar stream
	Contents     string `json:"contents"`
}

func makeReport(art *built, src sourceInfo) (*report, error) {
	top, err := art.top()
	if err != nil {
		return nil, err
	}
	r := &report{Digest: top.String(), Version: src.version, Revision: src.revision, Created: src.created.Format(time.RFC3339)}
	if art.index != nil {
		mt, err := art.index.MediaType()
		if err != nil {
			return nil, err
		}
		r.MediaType = string(mt)
	} else {
		mt, err := art.images[0].image.MediaType()
		if err != nil {
			return nil, err
		}
		r.MediaType = string(mt)
	}
	for _, pi := range art.images {
		d, err := pi.image.Digest()
		if err != nil {
			return nil, err
		}
		manifest, err := pi.image.RawManifest()
		if err != nil {
			return nil, err
		}
		cfg, err := pi.image.RawConfigFile()
		if err != nil {
			return nil, err
		}
		pr := platformReport{Platform: pi.platform.String(), Digest: d.String(), Size: int64(len(manifest) + len(cfg))}
		for _, l := range pi.layers {
			ld, err := l.layer.Digest()
			if err != nil {
				return nil, err
			}
			size, err := l.layer.Size()
			if err != nil {
				return nil, err
			}
			pr.Size += size
			pr.Layers = append(pr.Layers, layerReport{Digest: ld.String(), Size: size, Uncompressed: l.uncompressed, Contents: l.what})
		}
		r.Images = append(r.Images, pr)
	}
	return r, nil
}

func (r *report) print(w io.Writer) {
	for _, im := range r.Images {
		fmt.Fprintf(w, "image %s %s: %s compressed\n", im.Platform, im.Digest, formatSize(im.Size))
		for _, l := range im.Layers {
			fmt.Fprintf(w, "  layer %s: %s (%s uncompressed) %s\n", l.Digest, formatSize(l.Size), formatSize(l.Uncompressed), l.Contents)
		}
	}
	what := "image"
	if len(r.Images) > 1 {
		what = fmt.Sprintf("index of %d platforms", len(r.Images))
	}
	fmt.Fprintf(w, "digest %s (%s, %s)\n", r.Digest, what, r.MediaType)
}

// formatSize prints bytes exactly and in MB (10^6, like the registries'
// and crane's figures) when large.
func formatSize(n int64) string {
	if n < 100_000 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f MB (%d bytes)", float64(n)/1e6, n)
}
