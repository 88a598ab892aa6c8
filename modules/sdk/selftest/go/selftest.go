// SDK self-test (Go): calls every function of modules/sdk/go once and checks what comes back,
// so a layout mistake in the SDK fails loudly. Input: a scratch folder the grants allow. Run by
// modules/check.sh under pyhost with grants it writes itself.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"peon.local/sdk"
)

func init() { peon.Handle(selftest) }

func main() {}

func code(err error) peon.ErrorCode {
	var e *peon.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 255
}

func selftest(dir string) (string, error) {
	fail := func(what string, err error) (string, error) {
		return "", fmt.Errorf("selftest failed: %s: %v", what, err)
	}
	file := dir + "/a.txt"
	if err := peon.WriteFile(file, []byte("hello")); err != nil {
		return fail("fs write", err)
	}
	if err := peon.AppendFile(file, []byte(" world")); err != nil {
		return fail("fs append", err)
	}
	if data, err := peon.ReadFile(file); err != nil || string(data) != "hello world" {
		return fail("fs read", err)
	}
	if names, err := peon.ReadDir(dir); err != nil || !slices.Contains(names, "a.txt") {
		return fail("fs read-dir", err)
	}
	if err := peon.Remove(file); err != nil {
		return fail("fs remove", err)
	}
	if _, err := peon.ReadFile(file); code(err) != peon.NotFound {
		return fail("fs read after remove is not-found", err)
	}
	if _, err := peon.ReadFile("/etc/shadow"); code(err) != peon.Denied {
		return fail("fs read outside is denied", err)
	}

	values := []peon.Value{peon.Integer(-5), peon.Real(2.5), peon.Text("héllo"), peon.Blob([]byte{0, 1, 255}), peon.Null()}
	if n, err := peon.Execute("t", "INSERT INTO t (i, r, s, b, n) VALUES (?1, ?2, ?3, ?4, ?5)", values...); err != nil || n != 1 {
		return fail("db execute", err)
	}
	rows, err := peon.Query("t", "SELECT i, r, s, b, n FROM t WHERE i = ?1", peon.Integer(-5))
	if err != nil {
		return fail("db query", err)
	}
	if !slices.Equal(rows.Columns, []string{"i", "r", "s", "b", "n"}) || len(rows.Rows) != 1 || len(rows.Rows[0]) != 5 {
		return fail("db shape", fmt.Errorf("%v %v", rows.Columns, rows.Rows))
	}
	r := rows.Rows[0]
	if r[0].Kind != peon.KindInteger || r[0].Integer != -5 || r[1].Kind != peon.KindReal || r[1].Real != 2.5 ||
		r[2].Kind != peon.KindText || r[2].Text != "héllo" || r[3].Kind != peon.KindBlob ||
		!bytes.Equal(r[3].Blob, []byte{0, 1, 255}) || r[4].Kind != peon.KindNull {
		return fail("db values round-trip", fmt.Errorf("%+v", r))
	}
	if _, err := peon.Execute("t", "DROP TABLE t"); code(err) != peon.Denied {
		return fail("db schema change is denied", err)
	}

	resp, err := peon.Send(peon.Request{Method: "POST", URL: "https://selftest.example/echo",
		Headers: []peon.Header{{Name: "x-one", Value: "1"}, {Name: "content-type", Value: "text/plain"}}, Body: []byte("ping")})
	if err != nil || resp.Status != 200 || !strings.Contains(string(resp.Body), `"received": 4`) ||
		!slices.Contains(resp.Headers, peon.Header{Name: "content-type", Value: "application/json"}) {
		return fail("http send", err)
	}

	out, err := peon.Exec("/usr/bin/wc", []string{"-c"}, []byte("abc"))
	if err != nil || out.Code != 0 || strings.TrimSpace(string(out.Stdout)) != "3" || len(out.Stderr) != 0 {
		return fail("exec wc -c", err)
	}
	if _, err := peon.Exec("/bin/sh", []string{"-c", "true"}, nil); code(err) != peon.Denied {
		return fail("exec of a shell is denied", err)
	}
	peon.Log(peon.Debug, "selftest done")
	return "go sdk selftest ok", nil
}
