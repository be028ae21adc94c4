// Command mtls answers the questions operators ask of an mTLS setup without
// writing Go: the ID and pin of a certificate, what a server presents, what
// a store holds, which certificate a host gets from a Tyk configuration and
// why, and what expires soon.
//
//	mtls id FILE                       the ID of a certificate or public key
//	mtls pin FILE | https://HOST[:PORT] the sha256// pin (and, for a URL, the chain seen)
//	mtls inspect FILE                  subject, issuer, SANs, validity, key, ID, pin
//	mtls store add|list|show|rm -dir DIR ...  a FileStore (secret: MTLS_STORE_SECRET)
//	mtls resolve -conf tyk.conf [-apps DIR] [-api ID] HOST[:PORT]
//	mtls check -conf tyk.conf [-apps DIR] [-within 720h]
//
// Every command takes -json. Exit status: 0 on success, 1 on a failed
// check, 2 on bad usage or input, with a message that names what was wrong.
//
//	go install github.com/mtlsgo/mtls/cmd/mtls@latest
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // a check found something
	exitUsage  = 2 // bad usage or input
)

// env gives what the command reads of the environment.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	json   bool
}

// command is one subcommand: it parses its flags from fs and runs.
type command struct {
	usage string
	run   func(e *env, fs *flag.FlagSet, args []string) error
}

var commands = map[string]command{
	"id":      {"id FILE", runID},
	"pin":     {"pin FILE | https://HOST[:PORT]", runPin},
	"inspect": {"inspect FILE", runInspect},
	"store":   {"store add|list|show|rm -dir DIR [FILE... | ID]", runStore},
	"resolve": {"resolve -conf tyk.conf [-apps DIR] [-api ID] HOST[:PORT]", runResolve},
	"check":   {"check -conf tyk.conf [-apps DIR] [-within DURATION]", runCheck},
}

// usageError is bad usage or input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// failedCheck is a check that found something: exit status 1.
var failedCheck = errors.New("the check failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stderr)
		return exitUsage
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mtls: unknown command %q\n", args[0])
		printUsage(stderr)
		return exitUsage
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, getenv: getenv}
	fs := flag.NewFlagSet("mtls "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&e.json, "json", false, "print JSON")
	fs.Usage = func() { fmt.Fprintf(stderr, "usage: mtls %s [-json]\n", cmd.usage); fs.PrintDefaults() }
	err := cmd.run(e, fs, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, failedCheck):
		return exitFailed
	case errors.Is(err, flag.ErrHelp):
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mtls %s: %s\nusage: mtls %s\n", args[0], ue.msg, cmd.usage)
		return exitUsage
	}
	fmt.Fprintf(stderr, "mtls %s: %s\n", args[0], strings.TrimPrefix(err.Error(), "mtls: "))
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: mtls COMMAND [-json] ...")
	for _, name := range []string{"id", "pin", "inspect", "store", "resolve", "check"} {
		fmt.Fprintf(w, "  mtls %s\n", commands[name].usage)
	}
}

// parse parses flags and positional arguments, flags allowed after them
// too ("mtls id FILE -json").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// print writes v as indented JSON with -json, else text as it is.
func (e *env) print(v any, text string) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := io.WriteString(e.stdout, text)
	return err
}
