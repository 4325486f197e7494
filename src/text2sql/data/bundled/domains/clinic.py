"""clinic: doctors, patients, appointments and the prescriptions written at them."""

from __future__ import annotations

import random
from datetime import date

from text2sql.data.bundled.conversations import Conversation, Step
from text2sql.data.bundled.domains.base import Domain, Rows, day, distinct_amounts, people
from text2sql.data.bundled.pairs import AGGREGATES, TOP_K, Template, superlatives

SCHEMA = (
    """CREATE TABLE doctors (
  doctor_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  specialty TEXT NOT NULL,
  years_experience INTEGER NOT NULL
)""",
    """CREATE TABLE patients (
  patient_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  birth_year INTEGER NOT NULL,
  gender TEXT NOT NULL
)""",
    """CREATE TABLE appointments (
  appointment_id INTEGER PRIMARY KEY,
  patient_id INTEGER NOT NULL,
  doctor_id INTEGER NOT NULL,
  appointment_date TEXT NOT NULL,
  reason TEXT NOT NULL,
  fee REAL NOT NULL,
  FOREIGN KEY (patient_id) REFERENCES patients (patient_id),
  FOREIGN KEY (doctor_id) REFERENCES doctors (doctor_id)
)""",
    """CREATE TABLE prescriptions (
  prescription_id INTEGER PRIMARY KEY,
  appointment_id INTEGER NOT NULL,
  medication TEXT NOT NULL,
  dosage_mg INTEGER NOT NULL,
  FOREIGN KEY (appointment_id) REFERENCES appointments (appointment_id)
)""",
)

SPECIALTIES = (
    "Cardiology",
    "Dermatology",
    "Pediatrics",
    "Neurology",
    "Orthopedics",
    "Oncology",
    "Psychiatry",
    "General Practice",
)
CITIES = (
    "Springfield",
    "Riverside",
    "Fairview",
    "Greenville",
    "Madison",
    "Georgetown",
    "Clinton",
    "Salem",
    "Bristol",
    "Oakland",
)
REASONS = (
    "annual checkup",
    "flu symptoms",
    "back pain",
    "vaccination",
    "skin rash",
    "headache",
    "follow-up visit",
    "chest pain",
    "knee injury",
    "allergy test",
)
# Medication -> usual doses in mg.
MEDICATIONS = {
    "Amoxicillin": (250, 500, 875),
    "Ibuprofen": (200, 400, 600),
    "Lisinopril": (5, 10, 20),
    "Metformin": (500, 850, 1000),
    "Atorvastatin": (10, 20, 40),
    "Omeprazole": (20, 40),
    "Cetirizine": (5, 10),
    "Albuterol": (2, 4),
    "Sertraline": (25, 50, 100),
    "Prednisone": (5, 10, 20),
    "Levothyroxine": (25, 50, 75),
    "Amlodipine": (5, 10),
}


def populate(rng: random.Random) -> Rows:
    names = people(rng, 24 + 120)
    # Distinct experience and fees: "the 3 most experienced" always has one answer.
    experience = rng.sample(range(2, 41), 24)
    doctors = [(i + 1, names[i], SPECIALTIES[i % len(SPECIALTIES)], years) for i, years in enumerate(experience)]
    patients = [
        (i + 1, names[24 + i], rng.choice(CITIES), rng.randint(1940, 2015), rng.choice(("F", "M"))) for i in range(120)
    ]
    # Some patients are registered but have not been seen yet, for "never" questions.
    seen = rng.sample(range(1, len(patients) + 1), 100)
    fees = distinct_amounts(rng, 260, 40, 320)
    appointments = [
        (
            i + 1,
            rng.choice(seen),
            rng.randint(1, len(doctors)),
            day(rng, date(2023, 1, 1), date(2024, 12, 31)),
            rng.choice(REASONS),
            fee,
        )
        for i, fee in enumerate(fees)
    ]
    medications = list(MEDICATIONS)
    prescribed = sorted(rng.sample(range(1, len(appointments) + 1), 150))
    prescriptions = []
    for i, appointment_id in enumerate(prescribed):
        medication = rng.choice(medications)
        prescriptions.append((i + 1, appointment_id, medication, rng.choice(MEDICATIONS[medication])))
    return {
        "doctors": doctors,
        "patients": patients,
        "appointments": appointments,
        "prescriptions": prescriptions,
    }


TEMPLATES = (
    # basic
    Template(
        "patients_in_city",
        "SELECT name FROM patients WHERE city = '{city}'",
        (
            "List the names of patients from {city}.",
            "What are the names of the patients who live in {city}?",
            "Which patients live in {city}?",
            "Show all patients based in {city}.",
        ),
        values="SELECT city FROM patients",
    ),
    Template(
        "doctors_of_specialty",
        "SELECT name FROM doctors WHERE specialty = '{specialty}'",
        (
            "Which doctors specialize in {specialty}?",
            "List the names of {specialty} doctors.",
            "Show all doctors whose specialty is {specialty}.",
            "Who are the doctors working in {specialty}?",
        ),
        values="SELECT specialty FROM doctors",
    ),
    Template(
        "patient_birth_year",
        "SELECT birth_year FROM patients WHERE name = '{patient}'",
        (
            "In which year was {patient} born?",
            "What is the birth year of {patient}?",
            "Show the birth year of the patient {patient}.",
            "When was {patient} born?",
        ),
        values="SELECT name AS patient FROM patients",
    ),
    # aggregation
    Template(
        "count_appointments_after",
        "SELECT COUNT(*) FROM appointments WHERE appointment_date > '{date}'",
        (
            "How many appointments took place after {date}?",
            "Count the appointments dated after {date}.",
            "What is the number of appointments after {date}?",
            "How many appointments were held after {date}?",
        ),
        values="SELECT appointment_date AS date FROM appointments",
    ),
    Template(
        "fee_statistic_of_reason",
        "SELECT {agg}(fee) FROM appointments WHERE reason = '{reason}'",
        (
            "What is the {agg_word} fee for {reason} appointments?",
            "Find the {agg_word} fee charged for {reason} visits.",
            "Show the {agg_word} appointment fee for {reason}.",
            "For {reason} appointments, what is the {agg_word} fee?",
        ),
        values="SELECT reason FROM appointments",
        choices=(AGGREGATES,),
    ),
    Template(
        "count_per_city_born_after",
        "SELECT city, COUNT(*) FROM patients WHERE birth_year > {year} GROUP BY city",
        (
            "For each city, how many patients were born after {year}?",
            "Count the patients born after {year} in each city.",
            "How many patients per city were born after {year}?",
            "Show each city with its number of patients born after {year}.",
        ),
        values="SELECT birth_year AS year FROM patients",
    ),
    Template(
        "reasons_more_frequent_than",
        "SELECT reason FROM appointments GROUP BY reason HAVING COUNT(*) > {n}",
        (
            "Which appointment reasons occur more than {n} times?",
            "List the reasons given for more than {n} appointments.",
            "Show the appointment reasons that appear more than {n} times.",
            "What reasons were recorded for more than {n} appointments?",
        ),
        values="SELECT COUNT(*) - 1 AS n FROM appointments GROUP BY reason HAVING n > 1",
    ),
    # ordering
    Template(
        "top_doctors_by_experience",
        "SELECT name FROM doctors ORDER BY years_experience {dir} LIMIT {k}",
        (
            "Who are the {k} {sup} doctors?",
            "List the {k} {sup} doctors.",
            "Show the names of the {k} {sup} doctors.",
            "Which {k} doctors are the {sup}?",
        ),
        choices=(superlatives("most experienced", "least experienced"), TOP_K),
    ),
    Template(
        "top_appointments_of_reason_by_fee",
        "SELECT appointment_id, fee FROM appointments WHERE reason = '{reason}' ORDER BY fee {dir} LIMIT {k}",
        (
            "List the ids and fees of the {k} {sup} {reason} appointments.",
            "Show the {k} {sup} appointments for {reason} with their fees.",
            "What are the ids and fees of the {k} {sup} appointments for {reason}?",
            "Give the ids and fees of the {k} {sup} appointments with reason {reason}.",
        ),
        values="SELECT reason FROM appointments",
        choices=(superlatives("most expensive", "cheapest"), TOP_K),
    ),
    Template(
        "first_or_last_appointment_of_reason",
        "SELECT appointment_date FROM appointments WHERE reason = '{reason}' ORDER BY appointment_date {dir} LIMIT 1",
        (
            "When was the {sup} appointment for {reason}?",
            "What is the date of the {sup} {reason} appointment?",
            "Show the date of the {sup} appointment with reason {reason}.",
            "Find the date of the {sup} appointment for {reason}.",
        ),
        values="SELECT reason FROM appointments",
        choices=(superlatives("most recent", "first"),),
    ),
    # join
    Template(
        "doctors_seen_by_patient",
        "SELECT DISTINCT T1.name FROM doctors AS T1 JOIN appointments AS T2 ON T1.doctor_id = T2.doctor_id"
        " JOIN patients AS T3 ON T2.patient_id = T3.patient_id WHERE T3.name = '{patient}'",
        (
            "Which doctors has {patient} seen?",
            "List the doctors who treated {patient}.",
            "Show the names of doctors with appointments with {patient}.",
            "Who are the doctors that {patient} has visited?",
        ),
        values="SELECT name AS patient FROM patients",
    ),
    Template(
        "appointments_of_doctor",
        "SELECT T1.appointment_date, T1.reason FROM appointments AS T1 JOIN doctors AS T2"
        " ON T1.doctor_id = T2.doctor_id WHERE T2.name = '{doctor}'",
        (
            "List the dates and reasons of appointments with {doctor}.",
            "Show the appointment dates and reasons for {doctor}.",
            "On which dates did {doctor} see patients, and for what reasons?",
            "Give the date and reason of every appointment with {doctor}.",
        ),
        values="SELECT name AS doctor FROM doctors",
    ),
    Template(
        "total_fees_of_doctor",
        "SELECT SUM(T1.fee) FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id"
        " WHERE T2.name = '{doctor}'",
        (
            "What is the total fee collected by {doctor}?",
            "Find the sum of appointment fees for {doctor}.",
            "How much has {doctor} charged in total?",
            "Show the total of all fees for appointments with {doctor}.",
        ),
        values="SELECT name AS doctor FROM doctors",
    ),
    # nested
    Template(
        "doctors_more_experienced_than",
        "SELECT name FROM doctors WHERE years_experience >"
        " (SELECT years_experience FROM doctors WHERE name = '{doctor}')",
        (
            "Which doctors have more years of experience than {doctor}?",
            "List the doctors who are more experienced than {doctor}.",
            "Show the doctors with more experience than {doctor}.",
            "Who has more years of experience than {doctor}?",
        ),
        values="SELECT name AS doctor FROM doctors",
    ),
    Template(
        "city_patients_without_appointments",
        "SELECT name FROM patients WHERE city = '{city}' AND patient_id NOT IN (SELECT patient_id FROM appointments)",
        (
            "Which patients from {city} have never had an appointment?",
            "List the patients in {city} without any appointments.",
            "Show the names of {city} patients who have no appointments.",
            "Who are the patients from {city} that were never seen?",
        ),
        values="SELECT city FROM patients",
    ),
    Template(
        "patients_prescribed",
        "SELECT name FROM patients WHERE patient_id IN (SELECT T1.patient_id FROM appointments AS T1"
        " JOIN prescriptions AS T2 ON T1.appointment_id = T2.appointment_id"
        " WHERE T2.medication = '{medication}')",
        (
            "Which patients were prescribed {medication}?",
            "List the names of patients who received {medication}.",
            "Show the patients with a prescription for {medication}.",
            "Who has been prescribed {medication}?",
        ),
        values="SELECT medication FROM prescriptions",
    ),
)


# ------------------------------------------------------------------------------ follow-up conversations

_VISITS = "SELECT appointment_id, appointment_date FROM appointments WHERE reason = '{reason}'"
_PATIENTS = "SELECT name, birth_year FROM patients WHERE city = '{city}'"
_DOCTORS = "SELECT name, years_experience FROM doctors WHERE specialty = '{specialty}'"

CONVERSATIONS = (
    Conversation(
        "visits_for_reason_then_year",
        "SELECT reason, substr(appointment_date, 1, 4) AS year FROM appointments",
        (
            Step(
                _VISITS,
                (
                    "Show the appointments booked for {reason}.",
                    "Which appointments were for {reason}, and when?",
                    "List the {reason} appointments with their dates.",
                ),
            ),
            Step(
                _VISITS + " AND appointment_date LIKE '{year}-%'",
                ("Only those in {year}.", "Just the ones from {year}.", "Restrict that to {year}."),
            ),
            Step(
                _VISITS + " AND appointment_date LIKE '{year}-%' ORDER BY appointment_date ASC",
                ("Sort them by date, earliest first.", "Put them in date order."),
            ),
            Step(
                "SELECT SUM(fee) FROM appointments WHERE reason = '{reason}' AND appointment_date LIKE '{year}-%'",
                ("What did they cost in total?", "What is the total fee of those?"),
            ),
        ),
    ),
    Conversation(
        "patients_in_city_then_gender",
        "SELECT city, birth_year / 10 * 10 AS decade FROM patients",
        (
            Step(
                _PATIENTS,
                (
                    "Which patients live in {city}, and when were they born?",
                    "Show me the patients from {city} with their birth years.",
                    "Who are the patients based in {city}, and what year were they born?",
                ),
            ),
            Step(
                _PATIENTS + " AND gender = '{gender}'",
                ("Only the {gender_word} ones.", "Just the {gender_word} patients."),
            ),
            Step(
                _PATIENTS + " AND gender = '{gender}' AND birth_year < {decade}",
                ("Which of them were born before {decade}?", "Keep those born before {decade}."),
            ),
            Step(
                "SELECT COUNT(*) FROM patients WHERE city = '{city}' AND gender = '{gender}' AND birth_year < {decade}",
                ("How many is that?", "How many of them are there?"),
            ),
        ),
        choices=(({"gender": "F", "gender_word": "female"}, {"gender": "M", "gender_word": "male"}),),
    ),
    Conversation(
        "doctors_of_specialty_then_visits",
        "SELECT T1.specialty AS specialty, substr(T2.appointment_date, 1, 4) AS year FROM doctors AS T1"
        " JOIN appointments AS T2 ON T1.doctor_id = T2.doctor_id",
        (
            Step(
                _DOCTORS,
                (
                    "Who are the doctors working in {specialty}, and how experienced are they?",
                    "Show me the {specialty} doctors with their years of experience.",
                    "Which doctors practise {specialty}, and for how many years?",
                ),
            ),
            Step(
                _DOCTORS + " ORDER BY years_experience DESC",
                ("Sort them by experience, most experienced first.", "Order them by years of experience, most first."),
            ),
            Step(
                "SELECT COUNT(*) FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id"
                " WHERE T2.specialty = '{specialty}' AND T1.appointment_date LIKE '{year}-%'",
                ("How many appointments did they have in {year}?", "How many patients did they see in {year}?"),
            ),
        ),
    ),
)

DOMAIN = Domain("clinic", SCHEMA, populate, TEMPLATES, CONVERSATIONS)
