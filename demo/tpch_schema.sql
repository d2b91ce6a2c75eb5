-- TPC-H source schema for the demo ERP database (schema `public`).
--
-- Column types follow the TPC-H specification (clause 1.4, table layouts): identifiers are integer
-- (bigint for order keys, which outgrow integer above SF ~350), money and quantities are
-- numeric(15,2), fixed text is char(n), variable text is varchar(n).
--
-- Every table carries one extra column, `updated_at`, the incremental cursor that later
-- change batches bump. It is not part of TPC-H and not in the generated files: the default fills
-- it at load time.
--
-- Layout contract with demo/seed_tpch.py: comments are whole lines starting with `--`, and
-- `;` appears only to end a statement. `CREATE TABLE` statements run before the data is loaded;
-- every other statement (primary keys, indexes) names its table and runs after that table's load,
-- because building an index once is much faster than maintaining it row by row. The file is also
-- valid on its own: `psql -f demo/tpch_schema.sql` on an empty database creates the full schema.

CREATE TABLE region (
    r_regionkey integer      NOT NULL,
    r_name      char(25)     NOT NULL,
    r_comment   varchar(152) NOT NULL,
    updated_at  timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE nation (
    n_nationkey integer      NOT NULL,
    n_name      char(25)     NOT NULL,
    n_regionkey integer      NOT NULL,
    n_comment   varchar(152) NOT NULL,
    updated_at  timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE supplier (
    s_suppkey   integer        NOT NULL,
    s_name      char(25)       NOT NULL,
    s_address   varchar(40)    NOT NULL,
    s_nationkey integer        NOT NULL,
    s_phone     char(15)       NOT NULL,
    s_acctbal   numeric(15, 2) NOT NULL,
    s_comment   varchar(101)   NOT NULL,
    updated_at  timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE customer (
    c_custkey    integer        NOT NULL,
    c_name       varchar(25)    NOT NULL,
    c_address    varchar(40)    NOT NULL,
    c_nationkey  integer        NOT NULL,
    c_phone      char(15)       NOT NULL,
    c_acctbal    numeric(15, 2) NOT NULL,
    c_mktsegment char(10)       NOT NULL,
    c_comment    varchar(117)   NOT NULL,
    updated_at   timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE part (
    p_partkey     integer        NOT NULL,
    p_name        varchar(55)    NOT NULL,
    p_mfgr        char(25)       NOT NULL,
    p_brand       char(10)       NOT NULL,
    p_type        varchar(25)    NOT NULL,
    p_size        integer        NOT NULL,
    p_container   char(10)       NOT NULL,
    p_retailprice numeric(15, 2) NOT NULL,
    p_comment     varchar(23)    NOT NULL,
    updated_at    timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE partsupp (
    ps_partkey    integer        NOT NULL,
    ps_suppkey    integer        NOT NULL,
    ps_availqty   integer        NOT NULL,
    ps_supplycost numeric(15, 2) NOT NULL,
    ps_comment    varchar(199)   NOT NULL,
    updated_at    timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    o_orderkey      bigint         NOT NULL,
    o_custkey       integer        NOT NULL,
    o_orderstatus   char(1)        NOT NULL,
    o_totalprice    numeric(15, 2) NOT NULL,
    o_orderdate     date           NOT NULL,
    o_orderpriority char(15)       NOT NULL,
    o_clerk         char(15)       NOT NULL,
    o_shippriority  integer        NOT NULL,
    o_comment       varchar(79)    NOT NULL,
    updated_at      timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE lineitem (
    l_orderkey      bigint         NOT NULL,
    l_partkey       integer        NOT NULL,
    l_suppkey       integer        NOT NULL,
    l_linenumber    integer        NOT NULL,
    l_quantity      numeric(15, 2) NOT NULL,
    l_extendedprice numeric(15, 2) NOT NULL,
    l_discount      numeric(15, 2) NOT NULL,
    l_tax           numeric(15, 2) NOT NULL,
    l_returnflag    char(1)        NOT NULL,
    l_linestatus    char(1)        NOT NULL,
    l_shipdate      date           NOT NULL,
    l_commitdate    date           NOT NULL,
    l_receiptdate   date           NOT NULL,
    l_shipinstruct  char(25)       NOT NULL,
    l_shipmode      char(10)       NOT NULL,
    l_comment       varchar(44)    NOT NULL,
    updated_at      timestamptz    NOT NULL DEFAULT now()
);

-- Built after each table's load.

ALTER TABLE region ADD PRIMARY KEY (r_regionkey);
ALTER TABLE nation ADD PRIMARY KEY (n_nationkey);
ALTER TABLE supplier ADD PRIMARY KEY (s_suppkey);
ALTER TABLE customer ADD PRIMARY KEY (c_custkey);
ALTER TABLE part ADD PRIMARY KEY (p_partkey);
ALTER TABLE partsupp ADD PRIMARY KEY (ps_partkey, ps_suppkey);
ALTER TABLE orders ADD PRIMARY KEY (o_orderkey);
ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);

CREATE INDEX customer_updated_at_idx ON customer (updated_at);
CREATE INDEX part_updated_at_idx ON part (updated_at);
CREATE INDEX orders_updated_at_idx ON orders (updated_at);
CREATE INDEX lineitem_updated_at_idx ON lineitem (updated_at);
