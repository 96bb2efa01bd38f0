import Foundation

/// The registry's tables, as numbered migrations both backends run in order; a new version only
/// ever adds one. SQLite records them in GRDB's `grdb_migrations` (as before PostgreSQL was a
/// choice, so existing registries upgrade as they always did), PostgreSQL in
/// `registry_migrations`, under an advisory lock so that two heads starting at once apply each
/// migration once.
enum RegistrySchema {
    struct Migration: Sendable {
        let name: String
        /// Statements separated by `;` (none inside a statement).
        let sql: @Sendable (SQLDialect) -> String

        func statements(_ dialect: SQLDialect) -> [String] {
            sql(dialect).split(separator: ";").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .filter { !$0.isEmpty }
        }
    }

    static let migrations: [Migration] = [
        Migration(name: "1 nodes, MACs, groups") { _ in
            """
            CREATE TABLE node_group (name TEXT PRIMARY KEY NOT NULL);
            CREATE TABLE node (
                name TEXT PRIMARY KEY NOT NULL,
                ip TEXT NOT NULL UNIQUE,
                prefix INTEGER NOT NULL CHECK (prefix BETWEEN 8 AND 30),
                image TEXT,
                group_name TEXT REFERENCES node_group(name) ON DELETE RESTRICT
            );
            CREATE TABLE node_mac (
                mac TEXT PRIMARY KEY NOT NULL,
                node TEXT NOT NULL REFERENCES node(name) ON DELETE CASCADE ON UPDATE CASCADE
            );
            """
        },
        Migration(name: "2 boot configurations") { _ in
            """
            CREATE TABLE boot_config (
                name TEXT PRIMARY KEY NOT NULL,
                kernel TEXT NOT NULL,
                initrd TEXT NOT NULL,
                append TEXT NOT NULL DEFAULT ''
            );
            ALTER TABLE node ADD COLUMN boot_config TEXT REFERENCES boot_config(name);
            ALTER TABLE node_group ADD COLUMN boot_config TEXT REFERENCES boot_config(name);
            """
        },
        Migration(name: "3 config classes, assignments, tokens, configure reports") { _ in
            """
            CREATE TABLE config (
                class TEXT NOT NULL,
                name TEXT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (class, name)
            );
            CREATE TABLE config_assignment (
                class TEXT NOT NULL,
                config TEXT NOT NULL,
                target_kind TEXT NOT NULL CHECK (target_kind IN ('group', 'node')),
                target TEXT NOT NULL,
                PRIMARY KEY (class, target_kind, target, config),
                FOREIGN KEY (class, config) REFERENCES config(class, name) ON DELETE RESTRICT
            );
            ALTER TABLE node ADD COLUMN token_sha256 TEXT;
            CREATE TABLE node_report (
                node TEXT PRIMARY KEY NOT NULL REFERENCES node(name) ON DELETE CASCADE ON UPDATE CASCADE,
                os_family TEXT NOT NULL,
                configured_at TEXT NOT NULL
            );
            """
        },
        Migration(name: "4 time daemon in configure reports") { _ in
            "ALTER TABLE node_report ADD COLUMN time_daemon TEXT"
        },
        // One row per boot of a node (its newest few): stage and outcome as columns for queries,
        // the whole record with its events as JSON.
        Migration(name: "5 boots") { dialect in
            let id = dialect == .sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY"
            let real = dialect == .sqlite ? "REAL" : "DOUBLE PRECISION"
            return """
                CREATE TABLE boot (
                    id \(id),
                    node TEXT NOT NULL REFERENCES node(name) ON DELETE CASCADE ON UPDATE CASCADE,
                    started_at \(real) NOT NULL,
                    stage TEXT NOT NULL,
                    outcome TEXT NOT NULL CHECK (outcome IN ('booting', 'up', 'failed')),
                    record TEXT NOT NULL
                );
                CREATE INDEX boot_by_node ON boot(node, id);
                """
        },
        // Two nodes cannot share a BMC: a power command for one would reach the other.
        Migration(name: "6 BMC addresses") { _ in
            """
            ALTER TABLE node ADD COLUMN bmc TEXT;
            CREATE UNIQUE INDEX node_bmc ON node(bmc) WHERE bmc IS NOT NULL;
            """
        },
        // What UEFI nodes load instead of BIOS nodes' kernel, initrd and parameters (NULL: the same).
        Migration(name: "7 per-firmware boot configurations") { _ in
            """
            ALTER TABLE boot_config ADD COLUMN uefi_kernel TEXT;
            ALTER TABLE boot_config ADD COLUMN uefi_initrd TEXT;
            ALTER TABLE boot_config ADD COLUMN uefi_append TEXT;
            """
        },
    ]
}
