package metrics_test

import (
	"fmt"
	"io"
	"log"
	"strconv"
)

func newDiscardLog() *log.Logger { return log.New(io.Discard, "", 0) }

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
