package kubelet

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"
)

// imageFile is one file of an image's single layer.
type imageFile struct {
	Mode int64  // permission bits; a directory when Dir
	Dir  bool   // a directory
	Link string // a symlink to Link
	Src  string // the content is this host file
	Data []byte // else the content
}

// imageSpec is an image the tests build themselves: no registry is
// reachable, so each image is one layer written as an OCI image layout.
type imageSpec struct {
	Names      []string // full references, e.g. docker.io/library/vigil-example:1
	Files      map[string]imageFile
	Entrypoint []string
	Cmd        []string
}

// ociTar writes img as an OCI image layout in a tar, the form
// `ctr images import` reads: oci-layout, index.json and blobs/sha256/.
func ociTar(img imageSpec, w io.Writer) error {
	layer, err := layerTar(img.Files)
	if err != nil {
		return err
	}
	layerDigest := digest(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC(),
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        []string{"PATH=/bin"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	if err != nil {
		return err
	}
	var manifests []any
	for _, name := range img.Names {
		d := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
		d["annotations"] = map[string]string{"io.containerd.image.name": name}
		d["platform"] = map[string]string{"architecture": "amd64", "os": "linux"}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"blobs/sha256/" + hexOf(config), config},
		{"blobs/sha256/" + hexOf(manifest), manifest},
		{"blobs/sha256/" + hexOf(layer), layer},
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// layerTar is the image's file system as one uncompressed layer, its
// parent directories first.
func layerTar(files map[string]imageFile) ([]byte, error) {
	all := map[string]imageFile{}
	for p, f := range files {
		all[p] = f
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = imageFile{Dir: true, Mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		f := all[p]
		h := &tar.Header{Name: p[1:], Mode: f.Mode, ModTime: time.Unix(0, 0)}
		var data []byte
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		case f.Src != "":
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return nil, fmt.Errorf("image file %s: %w", p, err)
			}
			data = b
		default:
			data = f.Data
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func hexOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func digest(b []byte) string { return "sha256:" + hexOf(b) }

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
}
