-- Consent forms name their agreement questions (items[].agreement, definitions.Item): a consent
-- form is signed only with each shown one answered Yes. The shipped consent forms that no one has
-- edited (current version from the library) get a next version with the flag set, and their
-- chart forms not signed yet move to it: the items are the same apart from the flag, so their
-- answers still fit. A clinic's own versions are left as they are (staff set the flag in the
-- builder). A new database gets the flag with the library itself (library.py).
CREATE TEMPORARY TABLE agreement_items (library_key text, link_id text);
INSERT INTO agreement_items VALUES
    ('consent-to-treatment', 'consent'),
    ('hipaa-notice-acknowledgment', 'received'),
    ('financial-responsibility', 'assign_benefits'),
    ('financial-responsibility', 'responsible'),
    ('telehealth-consent', 'consent');

CREATE TEMPORARY TABLE flagged AS
SELECT f.id AS form_id, v.version AS old_version, v.title, v.description,
       (SELECT jsonb_agg(CASE WHEN a.link_id IS NULL THEN e.item
                              ELSE e.item || '{"agreement": true}' END ORDER BY e.n)
        FROM jsonb_array_elements(v.items) WITH ORDINALITY AS e (item, n)
        LEFT JOIN agreement_items a
               ON a.library_key = f.library_key AND a.link_id = e.item ->> 'link_id') AS items
FROM forms f
JOIN form_versions v ON v.form_id = f.id AND v.version = f.current_version
WHERE v.created_by = 'library'
  AND f.library_key IN (SELECT library_key FROM agreement_items);

INSERT INTO form_versions (form_id, version, title, description, items, created_by)
SELECT form_id, old_version + 1, title, description, items, 'library' FROM flagged;

UPDATE chart_forms cf SET form_version = fl.old_version + 1, updated_at = now()
FROM flagged fl
WHERE cf.form_id = fl.form_id AND cf.form_version = fl.old_version
  AND cf.status IN ('not-started', 'in-progress', 'returned')
  AND NOT EXISTS (SELECT 1 FROM signatures s WHERE s.chart_form_id = cf.id);

UPDATE forms f SET current_version = fl.old_version + 1, updated_at = now()
FROM flagged fl WHERE f.id = fl.form_id;

DROP TABLE agreement_items, flagged;
