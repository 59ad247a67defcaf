// Package migrations embeds the numbered schema migrations. The same files are
// sqlc's schema, so generated queries always match the migrated database.
package migrations

import "embed"

// FS holds the migrations, named NNNN_description.sql and applied in name order.
//
//go:embed *.sql
var FS embed.FS
