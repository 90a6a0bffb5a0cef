package cloudhypervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// copyChunk is how much is copied between progress reports and context
// checks.
const copyChunk = 64 << 20

// cloneFile makes dst a copy of src: a reflink clone (FICLONE) when the
// file system can share extents, otherwise a sparse copy that skips holes
// and uses copy_file_range. The copy is written under a temporary name and
// renamed into place, so an existing dst is always complete and a re-run
// after a crash skips it.
func cloneFile(ctx context.Context, log *slog.Logger, src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening disk image: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("reading disk image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("disk image %s is not a regular file", src)
	}
	tmp := dst + ".part"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating disk copy: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	size := st.Size()
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		log.InfoContext(ctx, "cloned disk image", slog.String(keyPath, src), slog.Int64(keyBytes, size), slog.String(keyMethod, "reflink"))
	} else {
		if err := sparseCopy(ctx, log, in, out, size); err != nil {
			return err
		}
		log.InfoContext(ctx, "copied disk image", slog.String(keyPath, src), slog.Int64(keyBytes, size), slog.String(keyMethod, "sparse copy"))
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("syncing disk copy: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("closing disk copy: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("renaming disk copy: %w", err)
	}
	ok = true
	return nil
}

// sparseCopy copies the data regions of in (found with SEEK_DATA and
// SEEK_HOLE) and leaves holes as holes, then sets the length.
func sparseCopy(ctx context.Context, log *slog.Logger, in, out *os.File, size int64) error {
	var copied, nextReport int64
	nextReport = size / 10
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			// No SEEK_DATA support: treat the rest as one data region.
			data = off
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		for pos := data; pos < hole; {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("copying disk image: %w", err)
			}
			n, err := copyRange(in, out, pos, min(hole-pos, copyChunk))
			if err != nil {
				return fmt.Errorf("copying disk image at offset %d: %w", pos, err)
			}
			pos += n
			copied += n
			if copied >= nextReport && size > copyChunk {
				log.InfoContext(ctx, "copying disk image", slog.Int64(keyBytes, copied), slog.Int64("total_bytes", size),
					slog.Int64("percent", 100*pos/size))
				nextReport += size / 10
			}
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return fmt.Errorf("sizing disk copy: %w", err)
	}
	return nil
}

// copyRange copies up to n bytes at offset pos, in kernel when it can.
func copyRange(in, out *os.File, pos, n int64) (int64, error) {
	roff, woff := pos, pos
	c, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(n), 0)
	if err == nil && c > 0 {
		return int64(c), nil
	}
	if err != nil && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOSYS) &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
		return 0, err
	}
	// Fall back to a user-space copy of the range.
	w, err := io.Copy(io.NewOffsetWriter(out, pos), io.NewSectionReader(in, pos, n))
	if err != nil {
		return w, err
	}
	if w == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	return w, nil
}
