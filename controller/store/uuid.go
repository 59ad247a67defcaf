package store

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// Left to itself, pgx sends a uuid.UUID parameter through its
// driver.Valuer (formatted as text, a failed encode whose error is built
// with fmt.Errorf, then parsed back) and reads uuid columns through its
// sql.Scanner, as text. registerUUID teaches a connection's type map
// uuid.UUID (and *uuid.UUID) as the 16 bytes it is, both ways: every query
// passes or reads ids, so this is a fair part of a request's CPU.
func registerUUID(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
}

// uuidCodec is pgx's UUID codec, taking and giving uuid.UUID directly.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	switch value.(type) {
	case uuid.UUID, *uuid.UUID:
		if next := c.UUIDCodec.PlanEncode(m, oid, format, pgUUID{}); next != nil {
			return uuidEncodePlan{next}
		}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok {
		if next := c.UUIDCodec.PlanScan(m, oid, format, &pgUUID{}); next != nil {
			return uuidScanPlan{next}
		}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

func (c uuidCodec) DecodeValue(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	var u uuid.UUID
	if err := c.PlanScan(m, oid, format, &u).Scan(src, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// pgUUID is uuid.UUID as pgx's UUID codec takes and gives it.
type pgUUID uuid.UUID

func (u pgUUID) UUIDValue() (pgtype.UUID, error) {
	return pgtype.UUID{Bytes: u, Valid: true}, nil
}

func (u *pgUUID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return fmt.Errorf("cannot scan NULL into *uuid.UUID")
	}
	*u = v.Bytes
	return nil
}

type uuidEncodePlan struct{ next pgtype.EncodePlan }

func (p uuidEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	switch v := value.(type) {
	case uuid.UUID:
		return p.next.Encode(pgUUID(v), buf)
	case *uuid.UUID:
		if v == nil {
			return nil, nil // NULL
		}
		return p.next.Encode(pgUUID(*v), buf)
	}
	return nil, fmt.Errorf("encode %T as uuid", value)
}

type uuidScanPlan struct{ next pgtype.ScanPlan }

func (p uuidScanPlan) Scan(src []byte, dst any) error {
	return p.next.Scan(src, (*pgUUID)(dst.(*uuid.UUID)))
}
