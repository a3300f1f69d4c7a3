"""The forms that ship with the product, seeded once per database (idempotent, on start).

Texts are invented but realistic; clinics edit them (a new version) or make their own. None is
available in the portal until staff select it (Patient Portal Forms → Update).
"""

from __future__ import annotations

import json

from services.forms.definitions import Condition, Definition, Item, Option
from services.runtime.db import Conn

YES_NO_UNSURE = (Option("yes", "Yes"), Option("no", "No"), Option("unsure", "Not sure"))
PHQ_SCALE = (
    Option("0", "Not at all"),
    Option("1", "Several days"),
    Option("2", "More than half the days"),
    Option("3", "Nearly every day"),
)


def _q(link_id: str, text: str, kind: str = "string", **extra: object) -> Item:
    return Item(link_id=link_id, text=text, type=kind, **extra)  # type: ignore[arg-type]


def _note(link_id: str, text: str) -> Item:
    return Item(link_id=link_id, text=text, type="display")


def _agree(link_id: str, text: str) -> Item:
    """What the signer agrees to: a consent form is signed only with it answered Yes."""
    return Item(link_id=link_id, text=text, type="boolean", required=True, agreement=True)


CONSENT_TO_TREATMENT = Definition(
    title="Consent to treatment",
    kind="consent",
    description="Your consent to examination and treatment at this clinic.",
    items=(
        _note(
            "intro",
            "I voluntarily consent to the examinations, tests, procedures and treatment that my "
            "clinicians consider necessary. I understand that medicine is not an exact science "
            "and that no guarantee has been made about the results.",
        ),
        _note(
            "rights",
            "I may ask questions about any proposed treatment and may refuse or withdraw my "
            "consent at any time, except for treatment already given.",
        ),
        _agree("consent", "I have read and understood this consent and agree to treatment."),
        _q(
            "representative",
            "If you sign on behalf of the patient, your relationship to the patient",
            help_text="Leave empty when you are the patient.",
        ),
    ),
)

HIPAA_NOTICE = Definition(
    title="Acknowledgment of the Notice of Privacy Practices (HIPAA)",
    kind="consent",
    items=(
        _note(
            "notice",
            "The Notice of Privacy Practices explains how we may use and disclose your health "
            "information and your rights to see, copy and correct it, to ask for restrictions "
            "and for confidential communications, and to complain.",
        ),
        _agree("received", "I have received, or been offered, a copy of the Notice."),
        _q(
            "contact_preference",
            "How may we leave messages about appointments and results?",
            "choice",
            options=(
                Option("phone", "Voicemail at my phone number"),
                Option("portal", "Patient portal messages only"),
                Option("mail", "Letter to my address"),
            ),
        ),
        _q("share_with", "People we may discuss your care with (name and relationship)", "text"),
    ),
)

FINANCIAL_RESPONSIBILITY = Definition(
    title="Financial responsibility agreement",
    kind="consent",
    items=(
        _note(
            "terms",
            "I am responsible for charges not paid by my insurance, including co-payments, "
            "deductibles and services my plan does not cover. Co-payments are due at the time "
            "of the visit. Appointments missed without 24 hours' notice may be charged.",
        ),
        _agree("assign_benefits", "I assign my insurance benefits to the clinic."),
        _agree("responsible", "I accept financial responsibility as described above."),
        _q("insurer", "Insurance company"),
        _q("member_id", "Member ID"),
    ),
)

TELEHEALTH_CONSENT = Definition(
    title="Telehealth consent",
    kind="consent",
    items=(
        _note(
            "about",
            "Telehealth visits use secure video or telephone instead of an in-person visit. "
            "A clinician may decide that an in-person visit is needed. Technical problems may "
            "interrupt a visit; the clinic will call you back.",
        ),
        _agree("consent", "I consent to receive care by telehealth."),
        _q(
            "location_state",
            "In which state or country will you usually be during telehealth visits?",
            required=True,
        ),
        _q("callback_phone", "A phone number we can call if the connection drops", required=True),
    ),
)

MEDICAL_HISTORY = Definition(
    title="Medical history",
    kind="visit",
    items=(
        _q(
            "conditions",
            "Have you ever been told you have any of these conditions?",
            "group",
            items=tuple(
                _q(link, text, "choice", options=YES_NO_UNSURE)
                for link, text in (
                    ("hypertension", "High blood pressure"),
                    ("diabetes", "Diabetes"),
                    ("heart_disease", "Heart disease"),
                    ("asthma_copd", "Asthma or COPD"),
                    ("cancer", "Cancer"),
                    ("depression_anxiety", "Depression or anxiety"),
                )
            ),
        ),
        _q("surgeries", "Past operations and hospital stays (what and when)", "text"),
        _q(
            "smoking",
            "Do you smoke?",
            "choice",
            required=True,
            options=(
                Option("never", "Never"),
                Option("former", "Former smoker"),
                Option("current", "Current smoker"),
            ),
        ),
        _q(
            "packs_per_day",
            "How many packs a day?",
            "decimal",
            enable_when=(Condition("smoking", "=", "current"),),
        ),
        _q("alcohol_per_week", "Alcoholic drinks in a typical week", "integer"),
        _q("family_history", "Illnesses of parents, brothers and sisters", "text"),
    ),
)

CURRENT_MEDICATIONS = Definition(
    title="Current medications",
    kind="visit",
    items=(
        _q("takes_medication", "Do you take any medicines?", "boolean", required=True),
        _q(
            "medications",
            "Each medicine with its strength and how you take it, one per line",
            "text",
            required=True,
            help_text="For example: Metformin 500 mg, one tablet twice a day.",
            enable_when=(Condition("takes_medication", "=", True),),
        ),
        _q("supplements", "Vitamins, herbal remedies and other supplements", "text"),
        _q("pharmacy", "Your preferred pharmacy (name and town)"),
    ),
)

ALLERGIES = Definition(
    title="Allergies",
    kind="visit",
    items=(
        _q("has_allergies", "Do you have any allergies?", "boolean", required=True),
        _q(
            "allergies",
            "Allergies",
            "group",
            enable_when=(Condition("has_allergies", "=", True),),
            items=(
                _q("drug_allergies", "Medicines you are allergic to, and what happens", "text"),
                _q("latex", "Are you allergic to latex?", "choice", options=YES_NO_UNSURE),
                _q("food_allergies", "Foods you are allergic to", "text"),
                _q("anaphylaxis", "Have you ever had a severe reaction (anaphylaxis)?", "boolean"),
            ),
        ),
    ),
)

REVIEW_OF_SYSTEMS = Definition(
    title="Review of systems",
    kind="visit",
    description="In the past month, have you had any of the following?",
    items=(
        *(
            _q(link, text, "boolean")
            for link, text in (
                ("fever", "Fever, chills or night sweats"),
                ("weight_change", "Unexplained weight loss or gain"),
                ("vision", "Changes in vision"),
                ("chest_pain", "Chest pain or pressure"),
                ("breathless", "Shortness of breath"),
                ("cough", "A cough that does not go away"),
                ("abdominal_pain", "Stomach pain, nausea or vomiting"),
                ("urinary", "Pain or difficulty passing urine"),
                ("joint_pain", "Joint pain or swelling"),
                ("rash", "A new rash or skin change"),
                ("headache", "Frequent headaches or dizziness"),
                ("mood", "Low mood, anxiety or trouble sleeping"),
            )
        ),
        _q("other_symptoms", "Anything else you want the clinician to know", "text"),
    ),
)

PHQ9_QUESTIONS = (
    ("phq9_1", "Little interest or pleasure in doing things"),
    ("phq9_2", "Feeling down, depressed, or hopeless"),
    ("phq9_3", "Trouble falling or staying asleep, or sleeping too much"),
    ("phq9_4", "Feeling tired or having little energy"),
    ("phq9_5", "Poor appetite or overeating"),
    (
        "phq9_6",
        "Feeling bad about yourself - or that you are a failure or have let yourself or your "
        "family down",
    ),
    (
        "phq9_7",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
    ),
    (
        "phq9_8",
        "Moving or speaking so slowly that other people could have noticed? Or the opposite - "
        "being so fidgety or restless that you have been moving around a lot more than usual",
    ),
    ("phq9_9", "Thoughts that you would be better off dead or of hurting yourself in some way"),
)

PHQ9 = Definition(
    title="Patient Health Questionnaire (PHQ-9)",
    kind="visit",
    items=(
        _note(
            "instructions",
            "Over the last 2 weeks, how often have you been bothered by any of the following "
            "problems?",
        ),
        *(
            _q(link, text, "choice", required=True, options=PHQ_SCALE)
            for link, text in PHQ9_QUESTIONS
        ),
        _q(
            "phq9_difficulty",
            "If you checked off any problems, how difficult have these problems made it for you "
            "to do your work, take care of things at home, or get along with other people?",
            "choice",
            options=(
                Option("not_difficult", "Not difficult at all"),
                Option("somewhat", "Somewhat difficult"),
                Option("very", "Very difficult"),
                Option("extremely", "Extremely difficult"),
            ),
        ),
    ),
)

REFILL_REQUEST = Definition(
    title="Prescription refill request",
    kind="refill",
    items=(
        _q("medication", "Medicine to refill (name and strength)", required=True),
        _q("dose", "How you take it", required=True),
        _q("pharmacy", "Pharmacy to send it to", required=True),
        _q("last_dose_date", "When will you run out?", "date"),
        _q("notes", "Anything the prescriber should know", "text"),
    ),
)

# library key -> definition; keys never change (they make seeding idempotent).
LIBRARY: dict[str, Definition] = {
    "consent-to-treatment": CONSENT_TO_TREATMENT,
    "hipaa-notice-acknowledgment": HIPAA_NOTICE,
    "financial-responsibility": FINANCIAL_RESPONSIBILITY,
    "telehealth-consent": TELEHEALTH_CONSENT,
    "medical-history": MEDICAL_HISTORY,
    "current-medications": CURRENT_MEDICATIONS,
    "allergies": ALLERGIES,
    "review-of-systems": REVIEW_OF_SYSTEMS,
    "phq-9": PHQ9,
    "prescription-refill-request": REFILL_REQUEST,
}


async def seed(conn: Conn) -> int:
    """Add the library forms this database lacks; return how many were added."""
    added = 0
    async with conn.transaction():
        for key, definition in LIBRARY.items():
            form_id = await conn.fetchval(
                """INSERT INTO forms (library_key, kind) VALUES ($1, $2)
                   ON CONFLICT (library_key) DO NOTHING RETURNING id""",
                key,
                definition.kind,
            )
            if form_id is None:
                continue
            await conn.execute(
                """INSERT INTO form_versions
                       (form_id, version, title, description, items, created_by)
                   VALUES ($1, 1, $2, $3, $4::jsonb, 'library')""",
                form_id,
                definition.title,
                definition.description,
                json.dumps(definition.items_json()),
            )
            added += 1
    return added
