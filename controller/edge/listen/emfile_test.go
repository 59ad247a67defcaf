package listen_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tpf-dev/tpf/controller/edge/listen"
)

// TestRealEMFILE runs out of file descriptors for real, in a child process
// (the limit is per process): accept fails with EMFILE, the listener backs
// off, the process survives, and the waiting connection is handed over once
// descriptors are free again.
func TestRealEMFILE(t *testing.T) {
	if os.Getenv("LISTEN_EMFILE_CHILD") == "1" {
		emfileChild(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealEMFILE$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LISTEN_EMFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "EMFILE-CHILD-OK") {
		t.Fatalf("child process did not finish its checks:\n%s", out)
	}
}

func emfileChild(t *testing.T) {
	var logs syncBuffer
	got := make(chan *listen.Conn, 1)
	s, err := listen.NewSet(lo4, func(c *listen.Conn) { got <- c },
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	port := openFree(t, s, only1)
	// The client socket exists before descriptors run out.
	client, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(client)

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 256
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var filler []int
	release := func() {
		for _, fd := range filler {
			unix.Close(fd)
		}
		filler = nil
	}
	defer release()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EMFILE {
			break
		}
		if err != nil {
			t.Fatalf("fill descriptors: %v", err)
		}
		filler = append(filler, fd)
	}

	if err := unix.Connect(client, &unix.SockaddrInet4{Port: int(port), Addr: lo4.As4()}); err != nil && err != unix.EINPROGRESS {
		t.Fatalf("connect: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "pausing listener") {
		if time.Now().After(deadline) {
			t.Fatalf("no backoff logged within 5s; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("backoff log does not name EMFILE:\n%s", logs.String())
	}

	release()
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got:
		c.Close()
	case <-time.After(listen.MaxBackoff + 5*time.Second):
		t.Fatalf("waiting connection not handed over after descriptors were freed; log:\n%s", logs.String())
	}
	fmt.Println("EMFILE-CHILD-OK")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BenchmarkOpen10k opens 10,000 listeners (127.0.0.1:10000 upwards, the
// ports bench/listeners.sh uses, skipping taken ones) in one Set and reports
// the time to open them and the process's cost per listener: RSS and Go heap
// growth on the first (cold) round, and the kernel slab growth.
func BenchmarkOpen10k(b *testing.B) {
	const n = 10000
	h := func(c *listen.Conn) { c.Close() }
	var openMS, closeMS []float64
	first := true
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		rss0, slab0 := procKB("/proc/self/status", "VmRSS"), procKB("/proc/meminfo", "Slab")

		start := time.Now()
		s, err := listen.NewSet(lo4, h, nil)
		if err != nil {
			b.Fatal(err)
		}
		opened := make([]uint16, 0, n)
		for port := 10000; len(opened) < n && port < 65536; port++ {
			if err := s.Open(uint16(port), only1); err == nil {
				opened = append(opened, uint16(port))
			}
		}
		openMS = append(openMS, float64(time.Since(start).Microseconds())/1000)
		if len(opened) < n {
			b.Fatalf("opened %d listeners, want %d", len(opened), n)
		}
		for _, p := range []uint16{opened[0], opened[n/2], opened[n-1]} {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo4, p).String(), 2*time.Second)
			if err != nil {
				b.Fatalf("probe %d: %v", p, err)
			}
			c.Close()
		}
		if first {
			runtime.ReadMemStats(&m1)
			rss1, slab1 := procKB("/proc/self/status", "VmRSS"), procKB("/proc/meminfo", "Slab")
			b.ReportMetric(float64((rss1-rss0)*1024)/n, "RSS-B/listener")
			b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/n, "heap-B/listener")
			b.ReportMetric(float64((slab1-slab0)*1024)/n, "slab-B/listener")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
			first = false
		}
		start = time.Now()
		if err := s.Shutdown(); err != nil {
			b.Fatal(err)
		}
		closeMS = append(closeMS, float64(time.Since(start).Microseconds())/1000)
	}
	b.ReportMetric(median(openMS), "open-ms/10k")
	b.ReportMetric(median(closeMS), "close-ms/10k")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

func procKB(file, key string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			var v int64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}
