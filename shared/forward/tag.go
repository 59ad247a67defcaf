package forward

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TagPrefix starts the comment of every router NAT rule tpf creates. Rules
// whose comment lacks it belong to someone else and are never touched.
const TagPrefix = "tpf:"

// Errors returned by ParseTag; branch on them with errors.Is.
var (
	// ErrNotTag means the comment lacks TagPrefix: the rule is not ours,
	// leave it alone.
	ErrNotTag = errors.New("not a tpf tag")
	// ErrBadTag means the comment has TagPrefix but is malformed: the rule
	// is ours but broken, remove it.
	ErrBadTag = errors.New("malformed tpf tag")
)

// maxExpiry bounds the expiry so every accepted value survives the round trip
// through time.Time; no real forward lives anywhere near this long.
var maxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()

// Tag is the parsed comment of a tpf rule, "tpf:<uuid>:<unix-expiry>", e.g.
// "tpf:9c56202d-c388-484d-ac9a-7677f24f1f18:1719030809".
type Tag struct {
	ID      string    // forward ID, lower-case canonical UUID text
	Expires time.Time // UTC, whole seconds
}

// String formats t as a rule comment. For any tag ParseTag returns,
// ParseTag(t.String()) gives t back.
func (t Tag) String() string {
	return TagPrefix + t.ID + ":" + strconv.FormatInt(t.Expires.Unix(), 10)
}

// IsTPF reports whether a rule comment marks the rule as created by tpf.
func IsTPF(comment string) bool {
	return strings.HasPrefix(comment, TagPrefix)
}

// ParseTag parses a rule comment strictly: TagPrefix, a canonical lower-case
// 8-4-4-4-12 hex UUID, ":", and the expiry in Unix seconds as plain decimal
// without sign or leading zeros. Exactly one spelling is accepted for each
// tag, so a rule's comment can be compared as text.
//
// It returns ErrNotTag if the prefix is absent and an error wrapping
// ErrBadTag if the prefix is present but the rest is malformed.
func ParseTag(comment string) (Tag, error) {
	rest, ok := strings.CutPrefix(comment, TagPrefix)
	if !ok {
		return Tag{}, fmt.Errorf("%q: %w", comment, ErrNotTag)
	}
	id, expiry, ok := strings.Cut(rest, ":")
	if !ok {
		return Tag{}, fmt.Errorf("%q: %w: want %s<uuid>:<unix-expiry>", comment, ErrBadTag, TagPrefix)
	}
	if !isUUID(id) {
		return Tag{}, fmt.Errorf("%q: %w: id is not a canonical lower-case UUID", comment, ErrBadTag)
	}
	sec, ok := parseUnix(expiry)
	if !ok {
		return Tag{}, fmt.Errorf("%q: %w: expiry is not canonical Unix seconds", comment, ErrBadTag)
	}
	return Tag{ID: id, Expires: time.Unix(sec, 0).UTC()}, nil
}

// isUUID reports whether s is a UUID in canonical lower-case text form,
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx. Version and variant are not checked:
// the ID only has to be recognisable, not generated here.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// parseUnix parses non-negative Unix seconds written as plain decimal
// without sign or leading zeros, up to maxExpiry.
func parseUnix(s string) (int64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxExpiry {
		return 0, false
	}
	return n, true
}
