-- 0001_initial: shops, their products, widget drafts, published widget versions, seen webhooks.
--
-- One file serves SQLite and MySQL/MariaDB. Rules for every migration file (the runner relies on them):
-- * each statement ends with ";" at the end of a line, and there is no ";" anywhere else;
-- * MySQL-only table options go in a /*! ... */ comment, which MySQL executes and SQLite skips;
-- * MySQL commits DDL implicitly, so a file may be half applied after a crash: make it safe to
--   re-run (IF NOT EXISTS) rather than relying on its transaction;
-- * PRIMARY KEY columns say NOT NULL (SQLite would otherwise allow NULL in them);
-- * column types are written as MySQL reports them back, so schema_description() matches on both.
-- JSON is stored as compact text (LONGTEXT), never MySQL's JSON type: the bytes we write are the
-- bytes we read, on both engines. Timestamps are UTC "YYYY-MM-DDTHH:MM:SSZ" strings (CHAR(20)).

CREATE TABLE IF NOT EXISTS shops (
    shop VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    currency VARCHAR(16) NOT NULL,
    money_format VARCHAR(255) NOT NULL,
    default_locale VARCHAR(35) NOT NULL,
    locales LONGTEXT NOT NULL,
    version INT NOT NULL,
    created_at CHAR(20) NOT NULL,
    updated_at CHAR(20) NOT NULL,
    PRIMARY KEY (shop)
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin */;

CREATE TABLE IF NOT EXISTS products (
    shop VARCHAR(255) NOT NULL,
    product_id BIGINT NOT NULL,
    handle VARCHAR(255) NOT NULL,
    title VARCHAR(255) NOT NULL,
    document LONGTEXT NOT NULL,
    version INT NOT NULL,
    updated_at CHAR(20) NOT NULL,
    PRIMARY KEY (shop, product_id),
    CONSTRAINT products_shop_fk FOREIGN KEY (shop) REFERENCES shops (shop) ON DELETE CASCADE
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin */;

CREATE TABLE IF NOT EXISTS widgets (
    shop VARCHAR(255) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    draft LONGTEXT NULL,
    draft_updated_at CHAR(20) NULL,
    published_version INT NULL,
    PRIMARY KEY (shop, kind),
    CONSTRAINT widgets_shop_fk FOREIGN KEY (shop) REFERENCES shops (shop) ON DELETE CASCADE
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin */;

-- Append-only: a version row is never updated; rollback appends a copy as a new version.
CREATE TABLE IF NOT EXISTS widget_versions (
    shop VARCHAR(255) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    version INT NOT NULL,
    settings LONGTEXT NOT NULL,
    published_at CHAR(20) NOT NULL,
    PRIMARY KEY (shop, kind, version),
    CONSTRAINT widget_versions_widget_fk FOREIGN KEY (shop, kind) REFERENCES widgets (shop, kind)
        ON DELETE CASCADE
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin */;

CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id VARCHAR(255) NOT NULL,
    processed_at CHAR(20) NOT NULL,
    PRIMARY KEY (webhook_id)
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin */;
