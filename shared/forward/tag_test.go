package forward

import (
	"errors"
	"testing"
	"time"
)

func TestParseTag(t *testing.T) {
	t.Parallel()
	const id = "9c56202d-c388-484d-ac9a-7677f24f1f18"
	tests := []struct {
		in      string
		want    Tag
		wantErr error
	}{
		{in: "tpf:" + id + ":1719030809", want: Tag{ID: id, Expires: time.Date(2024, 6, 22, 4, 33, 29, 0, time.UTC)}},
		{in: "tpf:" + id + ":0", want: Tag{ID: id, Expires: time.Unix(0, 0).UTC()}},
		{in: "tpf:00000000-0000-0000-0000-000000000000:1", want: Tag{ID: "00000000-0000-0000-0000-000000000000", Expires: time.Unix(1, 0).UTC()}},
		{in: "tpf:" + id + ":253402300799", want: Tag{ID: id, Expires: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}},

		// Not ours: leave alone.
		{in: "", wantErr: ErrNotTag},
		{in: "defconf: masquerade", wantErr: ErrNotTag},
		{in: "TPF:" + id + ":1719030809", wantErr: ErrNotTag},
		{in: " tpf:" + id + ":1719030809", wantErr: ErrNotTag},
		{in: "tpf", wantErr: ErrNotTag},

		// Ours but broken: remove.
		{in: "tpf:", wantErr: ErrBadTag},
		{in: "tpf:" + id, wantErr: ErrBadTag},
		{in: "tpf:" + id + ":", wantErr: ErrBadTag},
		{in: "tpf::1719030809", wantErr: ErrBadTag},
		{in: "tpf:9C56202D-C388-484D-AC9A-7677F24F1F18:1719030809", wantErr: ErrBadTag},
		{in: "tpf:{" + id + "}:1719030809", wantErr: ErrBadTag},
		{in: "tpf:9c56202dc388484dac9a7677f24f1f18:1719030809", wantErr: ErrBadTag},
		{in: "tpf:9c56202d-c388-484d-ac9a-7677f24f1f1:1719030809", wantErr: ErrBadTag},
		{in: "tpf:9c56202d-c388-484d-ac9a-7677f24f1f18a:1719030809", wantErr: ErrBadTag},
		{in: "tpf:9c56202d-c388-484d-ac9a_7677f24f1f18:1719030809", wantErr: ErrBadTag},
		{in: "tpf:9c56202d-c388-484d-ac9a-7677f24f1g18:1719030809", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":01719030809", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":00", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":+1719030809", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":-1", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":1719030809 ", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":1719030809:x", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":1.5", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":253402300800", wantErr: ErrBadTag},
		{in: "tpf:" + id + ":99999999999999999999", wantErr: ErrBadTag},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTag(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseTag(%q): got %+v, %v; want error %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTag(%q): got error %v, want %+v", tt.in, err, tt.want)
			}
			if got.ID != tt.want.ID || !got.Expires.Equal(tt.want.Expires) || got.Expires.Location() != time.UTC {
				t.Errorf("ParseTag(%q): got %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("ParseTag(%q).String(): got %q, want %q", tt.in, s, tt.in)
			}
		})
	}
}

func TestTagString(t *testing.T) {
	t.Parallel()
	tag := Tag{ID: "9c56202d-c388-484d-ac9a-7677f24f1f18", Expires: time.Unix(1719030809, 0)}
	if got, want := tag.String(), "tpf:9c56202d-c388-484d-ac9a-7677f24f1f18:1719030809"; got != want {
		t.Errorf("String(): got %q, want %q", got, want)
	}
}

func TestIsTPF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"tpf:9c56202d-c388-484d-ac9a-7677f24f1f18:1719030809", true},
		{"tpf:garbage", true},
		{"tpf:", true},
		{"tpf", false},
		{"", false},
		{"Tpf:x", false},
		{"my tpf:x", false},
	}
	for _, tt := range tests {
		if got := IsTPF(tt.in); got != tt.want {
			t.Errorf("IsTPF(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseTag(f *testing.F) {
	for _, seed := range []string{
		"tpf:9c56202d-c388-484d-ac9a-7677f24f1f18:1719030809",
		"tpf:00000000-0000-0000-0000-000000000000:0",
		"tpf:9c56202d-c388-484d-ac9a-7677f24f1f18:01719030809",
		"tpf:9C56202D-C388-484D-AC9A-7677F24F1F18:1719030809",
		"tpf:9c56202d-c388-484d-ac9a-7677f24f1f18:99999999999999999999",
		"tpf:",
		"defconf",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, comment string) {
		tag, err := ParseTag(comment)
		if err != nil {
			if IsTPF(comment) != errors.Is(err, ErrBadTag) || IsTPF(comment) == errors.Is(err, ErrNotTag) {
				t.Fatalf("ParseTag(%q): got error %v, want ErrBadTag iff the prefix is present, else ErrNotTag", comment, err)
			}
			return
		}
		if got := tag.String(); got != comment {
			t.Fatalf("ParseTag(%q).String(): got %q, want %q", comment, got, comment)
		}
		if tag.Expires.Location() != time.UTC || tag.Expires.Nanosecond() != 0 {
			t.Fatalf("ParseTag(%q): got Expires %v, want UTC whole seconds", comment, tag.Expires)
		}
	})
}
