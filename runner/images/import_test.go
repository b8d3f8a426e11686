package images_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	ctrimages "github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"

	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/images"
)

// Packaged archives are imported at start when an image they hold is
// missing, and not again once it is there.
func TestImportMissing(t *testing.T) {
	client := testenv.Containerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base, err := client.GetImage(ctx, baseImage)
	if err != nil {
		testenv.Unavailable(t, "runtime image %s not imported (make import): %v", baseImage, err)
	}
	// An archive of the runtime image under a name of the test's own.
	const name = "cronium.local/test/importmissing:1"
	is := client.ImageService()
	_ = is.Delete(ctx, name, ctrimages.SynchronousDelete())
	if _, err := is.Create(ctx, ctrimages.Image{Name: name, Target: base.Target()}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "importmissing.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Export(ctx, f, archive.WithImage(is, name), archive.WithPlatform(base.Platform())); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := is.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = is.Delete(context.Background(), name) })

	store := images.New(client, snapshotter)
	got, err := store.ImportMissing(ctx, dir, []string{name, baseImage})
	if err != nil || !slices.Contains(got, name) {
		t.Fatalf("ImportMissing = %v, %v; want %s imported", got, err, name)
	}
	if _, err := is.Get(ctx, name); err != nil {
		t.Fatalf("%s after the import: %v", name, err)
	}
	if got, err := store.ImportMissing(ctx, dir, []string{name}); err != nil || len(got) != 0 {
		t.Errorf("second ImportMissing = %v, %v; want nothing imported", got, err)
	}
	if got, err := store.ImportMissing(ctx, filepath.Join(dir, "none"), []string{"cronium.local/test/absent:1"}); err != nil || len(got) != 0 {
		t.Errorf("ImportMissing of an absent directory = %v, %v", got, err)
	}
	if _, err := is.Get(ctx, "cronium.local/test/absent:1"); !errdefs.IsNotFound(err) {
		t.Errorf("absent image: %v", err)
	}
}
