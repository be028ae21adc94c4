package tykconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxFile bounds what is read of a configuration file.
const maxFile = 8 << 20

// readFile reads a configuration file of at most maxFile bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Err: errors.Unwrap(err)}
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, maxFile+1)); err != nil {
		return nil, &Error{File: path, Err: err}
	}
	if b.Len() > maxFile {
		return nil, &Error{File: path, Err: fmt.Errorf("larger than %d bytes", maxFile)}
	}
	return b.Bytes(), nil
}

// decode unmarshals data into v, naming file, and the JSON path of a value
// of the wrong type, in errors.
func decode(file string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{File: file, Err: errors.New("empty file")}
	}
	if len(data) > maxFile {
		return &Error{File: file, Err: fmt.Errorf("larger than %d bytes", maxFile)}
	}
	err := json.Unmarshal(data, v)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return &Error{File: file, Err: fmt.Errorf("line %d, column %d: %w", line, col, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &Error{File: file, Err: fmt.Errorf("the file is a JSON %s, not an object", typ.Value)}
		}
		return &Error{File: file, Field: field, Err: fmt.Errorf("a JSON %s, want %s", typ.Value, jsonType(typ.Type.String()))}
	default:
		return &Error{File: file, Err: err}
	}
}

// jsonType names a Go type of the JSON structs as JSON does.
func jsonType(t string) string {
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer (" + t + ")"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case t == "map[string]string" || t == "mtls.Map":
		return "an object of strings"
	default:
		return "an object"
	}
}

// position returns the line and column of the character before off.
func position(data []byte, off int64) (line, col int) {
	off-- // the offset is after the character in error
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	line, col = 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
