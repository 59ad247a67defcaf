package routerostest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxWordLen is the largest word, and the largest sentence, ReadSentence
// accepts. The protocol allows 4 GiB words; real replies never come near
// 16 MiB, and the cap keeps a hostile or broken peer from making us
// allocate memory it never sends.
const MaxWordLen = 16 << 20

// ErrProtocol is wrapped by ReadSentence errors that mean the byte stream
// cannot be trusted any more (a reserved length byte, an oversized word).
// The only safe reaction is to close the connection.
var ErrProtocol = errors.New("routeros protocol error")

// AppendSentence appends words followed by the end-of-sentence marker to
// dst, each word with the shortest length prefix, and returns the result.
func AppendSentence(dst []byte, words ...string) []byte {
	for _, w := range words {
		dst = appendLength(dst, uint32(len(w)))
		dst = append(dst, w...)
	}
	return append(dst, 0)
}

// appendLength appends the shortest encoding of n. The switch points are
// the first values that do not fit the shorter form, hence the strict <.
func appendLength(dst []byte, n uint32) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x4000:
		n |= 0x8000
		return append(dst, byte(n>>8), byte(n))
	case n < 0x200000:
		n |= 0xC00000
		return append(dst, byte(n>>16), byte(n>>8), byte(n))
	case n < 0x10000000:
		n |= 0xE0000000
		return append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(dst, 0xF0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// readLength decodes one length prefix. It accepts non-minimal forms,
// because nothing says RouterOS rejects them, but refuses first bytes
// 0xF1-0xFF: the manual leaves them undefined (control bytes), so nothing
// after them can be interpreted.
func readLength(r *bufio.Reader) (uint32, error) {
	b0, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	var extra int
	var n uint32
	switch {
	case b0 < 0x80:
		return uint32(b0), nil
	case b0 < 0xC0:
		extra, n = 1, uint32(b0&0x3F)
	case b0 < 0xE0:
		extra, n = 2, uint32(b0&0x1F)
	case b0 < 0xF0:
		extra, n = 3, uint32(b0&0x0F)
	case b0 == 0xF0:
		extra = 4
	default:
		return 0, fmt.Errorf("%w: reserved length byte %#02x", ErrProtocol, b0)
	}
	for range extra {
		b, err := r.ReadByte()
		if err != nil {
			return 0, noEOF(err)
		}
		n = n<<8 | uint32(b)
	}
	return n, nil
}

// ReadSentence reads the next non-empty sentence from r and returns its
// words. Empty sentences (a lone zero byte) are skipped, as the manual
// requires. It returns io.EOF only when the stream ends cleanly between
// sentences, io.ErrUnexpectedEOF when it ends inside one, and an error
// wrapping ErrProtocol for input that can never be resynchronised.
// It never allocates much more than the bytes actually received.
func ReadSentence(r *bufio.Reader) ([]string, error) {
	for {
		words, err := readSentence(r)
		if err != nil {
			return nil, err
		}
		if len(words) > 0 {
			return words, nil
		}
	}
}

func readSentence(r *bufio.Reader) ([]string, error) {
	var words []string
	total := 0
	for {
		n, err := readLength(r)
		if err != nil {
			if len(words) > 0 {
				err = noEOF(err)
			}
			return nil, err
		}
		if n == 0 {
			return words, nil
		}
		if n > MaxWordLen || total+int(n) > MaxWordLen {
			return nil, fmt.Errorf("%w: word of %d bytes would exceed the %d-byte limit", ErrProtocol, n, MaxWordLen)
		}
		total += int(n)
		w, err := readWord(r, int(n))
		if err != nil {
			return nil, err
		}
		words = append(words, w)
	}
}

// smallWord is the size up to which readWord trusts the length prefix
// enough to allocate it up front.
const smallWord = 64 << 10

// readWord reads exactly n bytes. Large words are read in chunks so that
// a prefix announcing 16 MiB followed by silence costs nothing.
func readWord(r *bufio.Reader, n int) (string, error) {
	if n <= smallWord {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", noEOF(err)
		}
		return string(b), nil
	}
	var sb strings.Builder
	if _, err := io.CopyN(&sb, r, int64(n)); err != nil {
		return "", noEOF(err)
	}
	return sb.String(), nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF for reads that started a
// sentence and could not finish it.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
