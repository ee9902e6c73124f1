-- Knowledge bases (RAG): the embedded full-text index. A knowledge base belongs to a project; its documents
-- are keyed by the id given at ingestion (idempotent: ingesting a document again replaces its chunks); each
-- chunk carries a generated tsvector (title weighted B, text D) in the knowledge base's text search
-- configuration, indexed with GIN. OpenSearch, when configured, mirrors the chunks; these tables stay the record.

CREATE TABLE knowledge_bases (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name        text NOT NULL,
  description text NOT NULL DEFAULT '',
  -- A PostgreSQL text search configuration: stemming and stop words of the documents' language.
  language    regconfig NOT NULL DEFAULT 'english',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_bases_project ON knowledge_bases (project_id, created_at);

CREATE TABLE knowledge_documents (
  knowledge_base_id uuid NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  id                text NOT NULL,
  title             text,
  uri               text,
  content_type      text NOT NULL CHECK (content_type IN ('text', 'markdown', 'html')),
  chunk_count       integer NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (knowledge_base_id, id)
);

CREATE TABLE knowledge_chunks (
  knowledge_base_id uuid NOT NULL,
  document_id       text NOT NULL,
  chunk             integer NOT NULL,
  title             text,
  text              text NOT NULL,
  language          regconfig NOT NULL,
  tsv               tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector(language, coalesce(title, '')), 'B') || setweight(to_tsvector(language, text), 'D')
                    ) STORED,
  PRIMARY KEY (knowledge_base_id, document_id, chunk),
  FOREIGN KEY (knowledge_base_id, document_id) REFERENCES knowledge_documents (knowledge_base_id, id) ON DELETE CASCADE
);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING GIN (tsv);

-- Per-turn retrieval metrics (TurnMetrics.retrievalMs / retrievalHits / retrievalTimedOut).
ALTER TABLE turn_metrics
  ADD COLUMN retrieval_ms        double precision,
  ADD COLUMN retrieval_hits      integer,
  ADD COLUMN retrieval_timed_out boolean;
