package routerostest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// lengthVectors are the boundary vectors of ROUTEROS.md §1.2.
var lengthVectors = []struct {
	n   uint32
	hex string
}{
	{0x00, "00"},
	{0x01, "01"},
	{0x7F, "7f"},
	{0x80, "8080"},
	{0x87, "8087"},
	{0xC8, "80c8"},
	{0x12C, "812c"},
	{0x1C42, "9c42"},
	{0x3FFF, "bfff"},
	{0x4000, "c04000"},
	{0x4268, "c04268"},
	{0x4321, "c04321"},
	{0x1FFFF4, "dffff4"},
	{0x1FFFFF, "dfffff"},
	{0x200000, "e0200000"},
	{0x2ACDEF, "e02acdef"},
	{0xFFFFFF0, "effffff0"},
	{0xFFFFFFF, "efffffff"},
	{0x10000000, "f010000000"},
	{0x10000080, "f010000080"},
	{0xFFFFFFFF, "f0ffffffff"},
}

func TestLengthVectors(t *testing.T) {
	t.Parallel()
	for _, v := range lengthVectors {
		if got := hex.EncodeToString(appendLength(nil, v.n)); got != v.hex {
			t.Errorf("appendLength(%#x) = %s, want %s", v.n, got, v.hex)
		}
		raw, _ := hex.DecodeString(v.hex)
		got, err := readLength(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil || got != v.n {
			t.Errorf("readLength(%s) = %#x, %v, want %#x, nil", v.hex, got, err, v.n)
		}
	}
}

// TestLengthRoundTrip checks encode→decode over random lengths from every
// form, and that encodings are the shortest possible.
func TestLengthRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	bounds := []uint32{0x80, 0x4000, 0x200000, 0x10000000}
	for i := range 100000 {
		var n uint32
		switch i % 5 {
		case 4:
			n = rng.Uint32()
		default:
			hi := bounds[i%5]
			n = rng.Uint32N(hi)
		}
		enc := appendLength(nil, n)
		wantLen := 1 + sortIndex(bounds, n)
		if len(enc) != wantLen {
			t.Fatalf("appendLength(%#x) is %d bytes, want %d", n, len(enc), wantLen)
		}
		got, err := readLength(bufio.NewReader(bytes.NewReader(enc)))
		if err != nil || got != n {
			t.Fatalf("round trip of %#x = %#x, %v", n, got, err)
		}
	}
}

// sortIndex counts the bounds <= n: the number of extra prefix bytes.
func sortIndex(bounds []uint32, n uint32) int {
	k := 0
	for _, b := range bounds {
		if n >= b {
			k++
		}
	}
	return k
}

func TestReadLengthAcceptsNonMinimalForms(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"8005", "c00005", "e0000005", "f000000005"} {
		raw, _ := hex.DecodeString(h)
		got, err := readLength(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil || got != 5 {
			t.Errorf("readLength(%s) = %d, %v, want 5, nil", h, got, err)
		}
	}
}

func TestReadLengthRejectsReservedBytes(t *testing.T) {
	t.Parallel()
	for b := 0xF1; b <= 0xFF; b++ {
		raw := []byte{byte(b), 0, 0, 0, 0, 0}
		_, err := readLength(bufio.NewReader(bytes.NewReader(raw)))
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("readLength(%#02x...) error = %v, want ErrProtocol", b, err)
		}
	}
}

// TestLoginSentenceBytes is the 37-byte login example of ROUTEROS.md §1.3.
func TestLoginSentenceBytes(t *testing.T) {
	t.Parallel()
	want := "062f6c6f67696e" + "0b3d6e616d653d61646d696e" + "103d70617373776f72643d736563726574" + "00"
	got := hex.EncodeToString(AppendSentence(nil, "/login", "=name=admin", "=password=secret"))
	if got != want {
		t.Errorf("login sentence = %s, want %s", got, want)
	}
}

// TestAddSentenceLength is the 174-byte add of ROUTEROS.md §1.12.
func TestAddSentenceLength(t *testing.T) {
	t.Parallel()
	b := AppendSentence(nil, "/ip/firewall/nat/add", "=chain=dstnat", "=action=dst-nat",
		"=protocol=tcp", "=in-interface=wg-mgmt", "=dst-port=10022",
		"=to-addresses=192.168.88.43", "=to-ports=22", "=comment=mgr:r1:ssh43", ".tag=7")
	if len(b) != 174 {
		t.Errorf("add sentence is %d bytes, want 174", len(b))
	}
}

func TestReadSentence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		want    [][]string
		wantErr error // after the sentences in want
	}{
		{"one sentence", AppendSentence(nil, "!re", "=a=b"), [][]string{{"!re", "=a=b"}}, io.EOF},
		{"empty sentences skipped", append([]byte{0, 0}, AppendSentence([]byte{0}, "!done")...), [][]string{{"!done"}}, io.EOF},
		{"two sentences", AppendSentence(AppendSentence(nil, "!re"), "!done", ".tag=1"), [][]string{{"!re"}, {"!done", ".tag=1"}}, io.EOF},
		{"eof inside a word", []byte{5, '!', 'd'}, nil, io.ErrUnexpectedEOF},
		{"eof inside a prefix", []byte{0x80}, nil, io.ErrUnexpectedEOF},
		{"eof before the end marker", []byte{3, '!', 'r', 'e'}, nil, io.ErrUnexpectedEOF},
		{"control byte", []byte{0xF8, 1, 2, 3, 4}, nil, ErrProtocol},
		{"oversized word", []byte{0xE1, 0, 0, 1}, nil, ErrProtocol},
		{"oversized sentence", append(AppendSentence(nil, strings.Repeat("x", 1<<20))[:1<<20+3], 0xE0, 0xF0, 0, 1), nil, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := bufio.NewReader(iotest.OneByteReader(bytes.NewReader(tt.in)))
			for _, want := range tt.want {
				got, err := ReadSentence(r)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("ReadSentence = %q, %v, want %q, nil", got, err, want)
				}
			}
			if _, err := ReadSentence(r); !errors.Is(err, tt.wantErr) {
				t.Errorf("final ReadSentence error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestReadSentenceDoesNotTrustLengths checks that a prefix announcing a
// word just under the cap, followed by almost nothing, is not allocated.
func TestReadSentenceDoesNotTrustLengths(t *testing.T) {
	in := append(appendLength(nil, MaxWordLen-1), "short"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadSentence(bufio.NewReader(bytes.NewReader(in)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error = %v, want io.ErrUnexpectedEOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("allocated %d bytes for a 5-byte word, want under 1 MiB", got)
	}
}

// TestSentenceRoundTrip writes random sentences and reads them back one
// byte at a time, so every prefix and word is split across reads.
func TestSentenceRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := []int{1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x4001, 70000}
	var stream []byte
	var want [][]string
	for range 50 {
		var words []string
		for range 1 + rng.IntN(4) {
			n := 1 + rng.IntN(300)
			if rng.IntN(4) == 0 {
				n = sizes[rng.IntN(len(sizes))]
			}
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			words = append(words, string(b))
		}
		want = append(want, words)
		stream = AppendSentence(stream, words...)
	}
	r := bufio.NewReader(iotest.OneByteReader(bytes.NewReader(stream)))
	for i, w := range want {
		got, err := ReadSentence(r)
		if err != nil || !slices.Equal(got, w) {
			t.Fatalf("sentence %d: got %d words, err %v; want %d words", i, len(got), err, len(w))
		}
	}
	if _, err := ReadSentence(r); !errors.Is(err, io.EOF) {
		t.Errorf("after the last sentence: error %v, want io.EOF", err)
	}
}

func FuzzReadSentence(f *testing.F) {
	f.Add(AppendSentence(nil, "/login", "=name=admin", "=password="))
	f.Add(AppendSentence(nil, "!re", ".tag=1", "=comment=a=b"))
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0x80, 0x80})
	f.Add([]byte{0xF0, 0x00, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0xF8})
	f.Add([]byte{0xEF, 0xFF, 0xFF, 0xFF, 'x'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			words, err := ReadSentence(r)
			if err != nil {
				return
			}
			if len(words) == 0 {
				t.Fatal("ReadSentence returned an empty sentence")
			}
			total := 0
			for _, w := range words {
				if w == "" {
					t.Fatal("ReadSentence returned an empty word")
				}
				total += len(w)
			}
			if total > MaxWordLen || total > len(in) {
				t.Fatalf("sentence of %d bytes from %d bytes of input", total, len(in))
			}
			// What was read must survive a round trip.
			again, err := ReadSentence(bufio.NewReader(bytes.NewReader(AppendSentence(nil, words...))))
			if err != nil || !slices.Equal(again, words) {
				t.Fatalf("round trip: got %q, %v, want %q", again, err, words)
			}
		}
	})
}
