// go-fetcher: a web-page fetcher written in Go against the Go guest SDK (modules/sdk/go).
//
// Input: "DATABASE URL [URL ...]". For each URL it sends a GET (http.send), extracts the page's
// title, its meta description (or first paragraph) and its link count, and stores one row per
// page in table `pages` of DATABASE (db.execute with bound parameters). It then reads back how
// many pages the table holds (db.query). Capabilities used: http GET, db insert, db read, log.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared (a reactor: the host calls
// _initialize, then run).
package main

import (
	"errors"
	"fmt"
	"strings"

	"peon.local/sdk"
)

func init() { peon.Handle(fetch) }

// main is not called in a reactor; the package needs one to build.
func main() {}

type page struct {
	url, title, extract string
	status, links, size int
}

func fetch(input string) (string, error) {
	words := strings.Fields(input)
	if len(words) < 2 {
		return "", errors.New("usage: DATABASE URL [URL ...]")
	}
	database, urls := words[0], words[1:]
	var out strings.Builder
	stored := 0
	for _, url := range urls {
		resp, err := peon.Send(peon.Request{Method: "GET", URL: url, Headers: []peon.Header{{Name: "accept", Value: "text/html"}}})
		if err != nil {
			fmt.Fprintf(&out, "%s: not fetched: %v\n", url, err)
			continue
		}
		p := extract(url, int(resp.Status), string(resp.Body))
		_, err = peon.Execute(database,
			"INSERT INTO pages (url, status, title, extract, bytes, links) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			peon.Text(p.url), peon.Integer(int64(p.status)), peon.Text(p.title), peon.Text(p.extract),
			peon.Integer(int64(p.size)), peon.Integer(int64(p.links)))
		if err != nil {
			fmt.Fprintf(&out, "%s: fetched but not stored: %v\n", url, err)
			continue
		}
		stored++
		fmt.Fprintf(&out, "%s: %d %q, %d links, %d bytes\n", url, p.status, p.title, p.links, p.size)
	}
	rows, err := peon.Query(database, "SELECT count(*) FROM pages")
	if err != nil {
		return "", fmt.Errorf("%scounting pages failed: %w", out.String(), err)
	}
	total := int64(-1)
	if len(rows.Rows) == 1 && len(rows.Rows[0]) == 1 && rows.Rows[0][0].Kind == peon.KindInteger {
		total = rows.Rows[0][0].Integer
	}
	peon.Log(peon.Info, fmt.Sprintf("stored %d of %d pages", stored, len(urls)))
	fmt.Fprintf(&out, "stored %d of %d pages; %s now holds %d pages\n", stored, len(urls), database, total)
	if stored == 0 {
		return "", errors.New(out.String())
	}
	return out.String(), nil
}

// extract pulls the title, a description and the link count out of an HTML page with plain
// string search (enough for an example; not an HTML parser).
func extract(url string, status int, html string) page {
	lower := strings.ToLower(html)
	p := page{url: url, status: status, size: len(html), links: strings.Count(lower, "<a ")}
	p.title = between(html, lower, "<title>", "</title>")
	if i := strings.Index(lower, `<meta name="description" content="`); i >= 0 {
		rest := html[i+len(`<meta name="description" content="`):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			p.extract = rest[:j]
		}
	}
	if p.extract == "" {
		p.extract = stripTags(between(html, lower, "<p>", "</p>"))
	}
	if len(p.extract) > 200 {
		p.extract = p.extract[:200] + "..."
	}
	return p
}

func between(html, lower, open, close string) string {
	i := strings.Index(lower, open)
	if i < 0 {
		return ""
	}
	rest := html[i+len(open):]
	j := strings.Index(strings.ToLower(rest), close)
	if j < 0 {
		return ""
	}
	return strings.TrimSpace(rest[:j])
}

func stripTags(s string) string {
	var b strings.Builder
	inTag := false
	for _, r := range s {
		switch {
		case r == '<':
			inTag = true
		case r == '>':
			inTag = false
		case !inTag:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
