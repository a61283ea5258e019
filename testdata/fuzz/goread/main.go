// Command goread judges chaincode packages with Go's own readers, the way
// the two programs that read them after cclaunch do:
//
//   - the outer layer as the peer does at install (Fabric's
//     persistence.ChaincodePackageParser.Parse: gzip, tar to its end, each
//     entry read whole, nothing after the end of the tar);
//   - code.tar.gz as the Docker engine does when a build container receives
//     it (gzip, tar to its end, then the rest of the stream drained, as its
//     chrootarchive untar does).
//
// For each file argument it prints "<file>\tok" or "<file>\t<layer>\t<error>".
// Used by tests/go_reader.rs through the toolchain test image (no network).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// peer returns every code.tar.gz entry (the peer keeps the last; cclaunch
// refuses two, after judging the first).
func peer(source []byte) ([][]byte, error) {
	gz, err := gzip.NewReader(bytes.NewBuffer(source))
	if err != nil {
		return nil, fmt.Errorf("error reading as gzip stream: %w", err)
	}
	tr := tar.NewReader(gz)
	var code [][]byte
	for {
		header, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("error inspecting next tar header: %w", err)
		}
		if header.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("tar entry is not a regular file, type %v", header.Typeflag)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("could not read entry from tar: %w", err)
		}
		if header.Name == "code.tar.gz" {
			code = append(code, data)
		}
	}
	if code == nil {
		return nil, fmt.Errorf("did not find a code package inside the package")
	}
	return code, nil
}

func engine(code []byte) error {
	gz, err := gzip.NewReader(bytes.NewReader(code))
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
	_, err = io.Copy(io.Discard, gz)
	return err
}

func main() {
	var files []string
	for _, arg := range os.Args[1:] {
		if info, err := os.Stat(arg); err == nil && info.IsDir() {
			matches, _ := filepath.Glob(filepath.Join(arg, "*.tar.gz"))
			files = append(files, matches...)
		} else {
			files = append(files, arg)
		}
	}
	for _, file := range files {
		source, err := os.ReadFile(file)
		if err != nil {
			fmt.Printf("%s\tread\t%v\n", filepath.Base(file), err)
			continue
		}
		verdict := "ok"
		if codes, err := peer(source); err != nil {
			verdict = "peer\t" + err.Error()
		} else {
			for _, code := range codes {
				if err := engine(code); err != nil {
					verdict = "engine\t" + err.Error()
					break
				}
			}
		}
		fmt.Printf("%s\t%s\n", filepath.Base(file), strings.ReplaceAll(verdict, "\n", " "))
	}
}
