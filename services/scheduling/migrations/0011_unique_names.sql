-- Names that tell things apart, whatever their case: an appointment type's name is unique, and an
-- active provider's display name is unique among active providers (a deactivated provider keeps
-- theirs, so a successor may take it).
--
-- Rows that already break the rule keep working: the oldest keeps its name, each later one gets
-- " (2)", " (3)", ... (the first number no row uses), so staff see and can rename them.
DO $$
DECLARE
    dup record;
    n integer;
    candidate text;
BEGIN
    FOR dup IN
        SELECT id, name FROM (
            SELECT id, name,
                   row_number() OVER (PARTITION BY lower(name) ORDER BY created_at, id) AS nth
            FROM appointment_types) ranked
        WHERE nth > 1
        ORDER BY lower(name), nth
    LOOP
        n := 2;
        LOOP
            candidate := left(dup.name, 190) || ' (' || n || ')';
            EXIT WHEN NOT EXISTS (
                SELECT 1 FROM appointment_types WHERE lower(name) = lower(candidate));
            n := n + 1;
        END LOOP;
        UPDATE appointment_types SET name = candidate WHERE id = dup.id;
    END LOOP;

    FOR dup IN
        SELECT id, display_name FROM (
            SELECT id, display_name,
                   row_number() OVER (
                       PARTITION BY lower(display_name) ORDER BY created_at, id) AS nth
            FROM providers WHERE active) ranked
        WHERE nth > 1
        ORDER BY lower(display_name), nth
    LOOP
        n := 2;
        LOOP
            candidate := left(dup.display_name, 190) || ' (' || n || ')';
            EXIT WHEN NOT EXISTS (
                SELECT 1 FROM providers WHERE active AND lower(display_name) = lower(candidate));
            n := n + 1;
        END LOOP;
        UPDATE providers SET display_name = candidate, updated_at = now() WHERE id = dup.id;
    END LOOP;
END
$$;

ALTER TABLE appointment_types DROP CONSTRAINT appointment_types_name_key;
CREATE UNIQUE INDEX appointment_types_name_unique ON appointment_types (lower(name));
CREATE UNIQUE INDEX providers_active_name_unique ON providers (lower(display_name)) WHERE active;
