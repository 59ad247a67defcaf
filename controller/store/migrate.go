package store

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/sql/migrations"
)

// migrateLockKey serialises migrations across controller replicas
// (pg_advisory_lock; the number is arbitrary but fixed).
const migrateLockKey = 0x7466_6d69_6772_6174

// The bookkeeping statements stay here rather than in sqlc queries: they must
// run before any migration has created a table for sqlc to know.
const (
	sqlEnsureMigrations = `create table if not exists schema_migrations (
    version    text        not null,
    applied_at timestamptz not null default now(),
    constraint schema_migrations_pkey primary key (version)
)`
	sqlAppliedMigrations = `select version from schema_migrations order by version`
	sqlRecordMigration   = `insert into schema_migrations (version) values ($1)`
)

// Migrate applies the pending migrations, each in its own transaction, and
// returns the versions it applied. Concurrent callers wait for each other.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", int64(migrateLockKey)); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1)", int64(migrateLockKey))

	if _, err := conn.Exec(ctx, sqlEnsureMigrations); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// Everything below uses the locked connection: waiting for another from
	// the pool while holding this one could deadlock concurrent callers.
	pending, err := pendingMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, version := range pending {
		body, err := fs.ReadFile(migrations.FS, version+".sql")
		if err != nil {
			return applied, fmt.Errorf("migrate: %w", err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			tx.Rollback(ctx)
			return applied, fmt.Errorf("migrate %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, sqlRecordMigration, version); err != nil {
			tx.Rollback(ctx)
			return applied, fmt.Errorf("migrate %s: %w", version, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return applied, fmt.Errorf("migrate %s: %w", version, err)
		}
		applied = append(applied, version)
	}
	return applied, nil
}

// PendingMigrations lists the migrations not yet applied to the database.
func PendingMigrations(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "select to_regclass('schema_migrations') is not null").Scan(&exists); err != nil {
		return nil, fmt.Errorf("check migrations: %w", err)
	}
	if !exists {
		return knownMigrations()
	}
	return pendingMigrations(ctx, pool)
}

// querier is what pendingMigrations needs of a pool or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func pendingMigrations(ctx context.Context, db querier) ([]string, error) {
	known, err := knownMigrations()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, sqlAppliedMigrations)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	var done []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		done = append(done, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	var pending []string
	for _, v := range known {
		if !slices.Contains(done, v) {
			pending = append(pending, v)
		}
	}
	return pending, nil
}

func knownMigrations() ([]string, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = strings.TrimSuffix(n, ".sql")
	}
	return names, nil
}
