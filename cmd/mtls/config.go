package main

import "flag"

// runResolve and runCheck read a Tyk configuration: see resolve.go once
// the reader lands.
func runResolve(e *env, fs *flag.FlagSet, args []string) error {
	return usagef("not built yet")
}

func runCheck(e *env, fs *flag.FlagSet, args []string) error {
	return usagef("not built yet")
}
