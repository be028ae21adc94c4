package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mtlsgo/mtls"
)

// runStore runs store add|list|show|rm on a FileStore. The secret comes
// from MTLS_STORE_SECRET, never from a flag (flags reach ps and shell
// histories).
func runStore(e *env, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("give a subcommand: add, list, show or rm")
	}
	sub := args[0]
	dir := fs.String("dir", "", "the store's directory (required)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if *dir == "" {
		return usagef("-dir is required")
	}
	st, err := mtls.NewFileStore(*dir, []byte(e.getenv("MTLS_STORE_SECRET")))
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		return storeAdd(e, st, pos)
	case "list":
		if len(pos) != 0 {
			return usagef("list takes no argument")
		}
		return storeList(e, st)
	case "show", "rm":
		if len(pos) != 1 {
			return usagef("%s takes one ID", sub)
		}
		if sub == "rm" {
			if err := st.Delete(e.ctx, pos[0]); err != nil {
				return err
			}
			return e.print(map[string]string{"deleted": pos[0]}, "deleted "+pos[0]+"\n")
		}
		m, err := st.Metadata(e.ctx, pos[0])
		if err != nil {
			return err
		}
		return e.print(m, metadataText(m))
	}
	return usagef("unknown store subcommand %q: add, list, show or rm", sub)
}

// storeAdd adds the PEM files, given together: a certificate file and a
// key file may be separate.
func storeAdd(e *env, st *mtls.FileStore, files []string) error {
	if len(files) == 0 {
		return usagef("give the PEM files to add")
	}
	var data bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return usagef("%v", err)
		}
		data.Write(b)
		data.WriteByte('\n')
	}
	id, err := st.Add(e.ctx, data.Bytes())
	if err != nil {
		return usagef("%s: %v", strings.Join(files, " + "), strings.TrimPrefix(err.Error(), "mtls: "))
	}
	return e.print(map[string]string{"id": id}, id+"\n")
}

func storeList(e *env, st *mtls.FileStore) error {
	ids, err := st.List(e.ctx)
	if err != nil {
		return err
	}
	var all []mtls.Metadata
	var b strings.Builder
	for _, id := range ids {
		m, err := st.Metadata(e.ctx, id)
		if err != nil {
			fmt.Fprintf(e.stderr, "mtls store list: %s: %v\n", id, err)
			continue
		}
		all = append(all, m)
		expiry := "-"
		if !m.NotAfter.IsZero() {
			expiry = m.NotAfter.Format(time.RFC3339)
		}
		subject := m.Subject
		if subject == "" {
			subject = "(public key)"
		}
		fmt.Fprintf(&b, "%s  %s  %s\n", m.ID, expiry, subject)
	}
	if all == nil {
		all = []mtls.Metadata{}
	}
	return e.print(all, b.String())
}

func metadataText(m mtls.Metadata) string {
	var b strings.Builder
	fmt.Fprintf(&b, "id           %s\nsubject      %s\nissuer       %s\n", m.ID, m.Subject, m.Issuer)
	if !m.NotAfter.IsZero() {
		fmt.Fprintf(&b, "valid        %s to %s\n", m.NotBefore.Format(time.RFC3339), m.NotAfter.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "dns names    %s\nprivate key  %v\nis ca        %v\n", strings.Join(m.DNSNames, ", "), m.HasPrivateKey, m.IsCA)
	return b.String()
}
