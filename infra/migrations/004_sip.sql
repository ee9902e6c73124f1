-- SIP routing (issue 10): the trunks a project receives calls from and places calls through, and the numbers
-- (Request-URI users) that name the assistant answering an inbound INVITE. Secrets stay in `credentials`
-- (provider `sip`): a trunk only names them.

CREATE TABLE sip_trunks (
  id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id                uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name                      text NOT NULL,
  -- Source addresses allowed to send INVITEs, canonical CIDR text (a bare address is stored as /32 or /128).
  inbound_cidrs             text[] NOT NULL DEFAULT '{}',
  -- The `sip` credential whose {username, password} an INVITE must prove by digest; null: no challenge.
  inbound_digest_credential text,
  -- 401 (WWW-Authenticate) or 407 (Proxy-Authenticate), as the trunk's side expects.
  inbound_challenge         smallint NOT NULL DEFAULT 401 CHECK (inbound_challenge IN (401, 407)),
  inbound_realm             text,
  -- {host, port, credential?, fromUser?, fromHost?}; null: no outbound calls through this trunk.
  outbound                  jsonb,
  created_at                timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name),
  -- Target of sip_numbers' composite key: a number can only name a trunk of its own project.
  UNIQUE (id, project_id)
);

-- An INVITE carries no project, so a number is unique across the deployment. `number` is normalised by the
-- store: `+` and 2..15 digits (E.164), bare digits, or a lowercase SIP user token.
CREATE TABLE sip_numbers (
  number       text PRIMARY KEY
               CHECK (number ~ '^(\+[0-9]{2,15}|[0-9]{1,32}|[a-z0-9._~!$&''*-][a-z0-9._~!$&''*+-]{0,63})$'),
  project_id   uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  assistant_id uuid NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
  trunk_id     uuid,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- NO ACTION (not CASCADE): a trunk that numbers name cannot be deleted; a project delete removes both.
  FOREIGN KEY (trunk_id, project_id) REFERENCES sip_trunks (id, project_id)
);
-- Carriers send the same number with and without `+`: both forms are one number, held by one assistant.
CREATE UNIQUE INDEX sip_numbers_one_form ON sip_numbers ((ltrim(number, '+')));
CREATE INDEX sip_numbers_assistant ON sip_numbers (assistant_id);
CREATE INDEX sip_numbers_trunk ON sip_numbers (trunk_id) WHERE trunk_id IS NOT NULL;
