package routerostest

import (
	"encoding/hex"
	"testing"
)

// TestChallengeResponse uses the vectors of ROUTEROS.md §1.7.
func TestChallengeResponse(t *testing.T) {
	t.Parallel()
	tests := []struct{ password, challenge, want string }{
		{"", "93b438ec9b80057c06dd9fe67d56aa9a", "00e134102a9d330dd7b1849fedfea3cb57"},
		{"tset", "098f6bcd4621d373cade4e832627b4f6", "00119ce7e093e33497053e73f37a5d3e15"},
		{"passTest", "abc123", "0021277bff9ac7caf06aa608e46616d47f"},
	}
	for _, tt := range tests {
		challenge, _ := hex.DecodeString(tt.challenge)
		if got := challengeResponse(tt.password, challenge); got != tt.want {
			t.Errorf("challengeResponse(%q, %s) = %s, want %s", tt.password, tt.challenge, got, tt.want)
		}
	}
}
