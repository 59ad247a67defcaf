package store

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestUUIDCodec: uuid.UUID and *uuid.UUID go both ways as 16 bytes, with
// NULL for a nil pointer, without the driver.Valuer and sql.Scanner detour.
func TestUUIDCodec(t *testing.T) {
	m := pgtype.NewMap()
	registerUUID(m)
	u := uuid.New()
	for _, v := range []any{u, &u} {
		if p := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, v); p == nil {
			t.Fatalf("%T: no plan", v)
		} else if _, ok := p.(uuidEncodePlan); !ok {
			t.Errorf("%T: got plan %T, want uuidEncodePlan", v, p)
		}
		b, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, v, nil)
		if err != nil || len(b) != 16 {
			t.Fatalf("encode %T: got %x, %v, want 16 bytes", v, b, err)
		}
		var got uuid.UUID
		if err := m.Scan(pgtype.UUIDOID, pgtype.BinaryFormatCode, b, &got); err != nil || got != u {
			t.Errorf("scan: got %s, %v, want %s", got, err, u)
		}
		var ptr *uuid.UUID
		if err := m.Scan(pgtype.UUIDOID, pgtype.BinaryFormatCode, b, &ptr); err != nil || ptr == nil || *ptr != u {
			t.Errorf("scan into a pointer: got %v, %v, want %s", ptr, err, u)
		}
	}
	if b, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, (*uuid.UUID)(nil), nil); err != nil || b != nil {
		t.Errorf("a nil pointer: got %x, %v, want NULL", b, err)
	}
	ptr := &u
	if err := m.Scan(pgtype.UUIDOID, pgtype.BinaryFormatCode, nil, &ptr); err != nil || ptr != nil {
		t.Errorf("NULL into a pointer: got %v, %v, want nil", ptr, err)
	}
	if p := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, new(uuid.UUID)); p == nil {
		t.Error("scan: no plan")
	} else if _, ok := p.(uuidScanPlan); !ok {
		t.Errorf("scan: got plan %T, want uuidScanPlan", p)
	}
}
