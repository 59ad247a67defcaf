//go:build unix

package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/web"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// BenchmarkFleetPage renders the fleet page of an account with 1,000
// routers and 10,000 live forwards, through the handler and the database
// (the queries are part of the cost), and reports milliseconds per render.
//
//	go test -run '^$' -bench FleetPage ./controller/web/
func BenchmarkFleetPage(b *testing.B) {
	const routers, liveForwards = 1000, 10000
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	st := store.New(storetest.New(b))
	if _, err := st.CreateRegion(ctx, fleet.Region{ID: "bench", EntryPoint: "bench.example.net",
		Ports: fleet.PortRange{Min: 20000, Max: 39999}, EdgeTunnelAddress: netip.MustParseAddr("10.98.0.1"), CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	_, token, err := st.CreateAccount(ctx, "bench", now)
	if err != nil {
		b.Fatal(err)
	}
	p, err := st.Authenticate(ctx, token)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	rts := make([]fleet.Router, routers)
	parallel(b, routers, func(i int) error {
		rt, _, err := forwards.New(st).CreateRouter(ctx, p, forwards.NewRouter{Name: fmt.Sprintf("site-%04d", i), Region: "bench",
			TunnelAddress: netip.AddrFrom4([4]byte{10, 98, byte(1 + i/250), byte(1 + i%250)})}, now)
		if err != nil {
			return err
		}
		rts[i] = rt
		if i%10 == 9 { // one in ten never connected
			return nil
		}
		if err := st.AgentConnected(ctx, rt.ID, now); err != nil {
			return err
		}
		return forwards.New(st).AgentHello(ctx, rt.ID, syncproto.Hello{AgentVersion: "1.4.2",
			Router: syncproto.Router{RouterOSVersion: "7.18.2", Board: "RB5009UG+S+", Identity: rt.Name}}, now)
	})
	parallel(b, liveForwards, func(i int) error {
		_, err := forwards.New(st).CreateForward(ctx, p, rts[i%routers].ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"),
			DstPort: 22, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: 2 * time.Hour}, now)
		return err
	})
	b.Logf("seeded %d routers and %d forwards in %s", routers, liveForwards, time.Since(start).Round(time.Second))

	h := web.New(st, web.Config{})
	form := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, form)
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		b.Fatalf("sign in: got %d without a cookie", rec.Code)
	}

	b.Run("queries", func(b *testing.B) { // the two queries the page needs, alone
		for b.Loop() {
			if _, err := st.Routers(ctx, p.AccountID); err != nil {
				b.Fatal(err)
			}
			if _, err := st.FleetForwardCounts(ctx, p.AccountID, now); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	get := func(path, etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(cookies[0])
		req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd") // as browsers send it
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, bc := range []struct {
		name, path, want string
		unchanged        bool // poll with the ETag of the last answer
	}{
		{name: "all", path: "/", want: "site-0999"},
		{name: "search", path: "/?q=site-09&state=connected", want: "site-0998"},
		{name: "poll-unchanged", path: "/?fragment=live", unchanged: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			first := get(bc.path, "")
			if first.Code != http.StatusOK || !strings.Contains(gunzip(b, first.Body.Bytes()), bc.want) {
				b.Fatalf("GET %s: got %d without %s", bc.path, first.Code, bc.want)
			}
			etag, want := "", http.StatusOK
			if bc.unchanged {
				etag, want = first.Header().Get("ETag"), http.StatusNotModified
			}
			var size int
			cpu := cpuTime()
			for b.Loop() {
				rec := get(bc.path, etag)
				if rec.Code != want {
					b.Fatalf("GET %s: got %d, want %d", bc.path, rec.Code, want)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/render")
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/render")
			b.ReportMetric(float64(size)/1024, "KiB-gzip/page")
		})
	}
}

func gunzip(b *testing.B, body []byte) string {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

// cpuTime is the CPU time this process used so far: the Go side of a render
// (PostgreSQL's work is in its own processes), steadier than the wall clock
// on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallel runs fn(0..n-1) on a few goroutines, failing b on the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
