"""university: departments, instructors, students, courses and enrollments."""

from __future__ import annotations

import random

from text2sql.data.bundled.conversations import Conversation, Step
from text2sql.data.bundled.domains.base import Domain, Rows, people
from text2sql.data.bundled.pairs import AGGREGATES, TOP_K, Template, superlatives

SCHEMA = (
    """CREATE TABLE departments (
  department_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  building TEXT NOT NULL,
  budget INTEGER NOT NULL
)""",
    """CREATE TABLE instructors (
  instructor_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  department_id INTEGER NOT NULL,
  salary INTEGER NOT NULL,
  hire_year INTEGER NOT NULL,
  FOREIGN KEY (department_id) REFERENCES departments (department_id)
)""",
    """CREATE TABLE students (
  student_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  department_id INTEGER NOT NULL,
  enrollment_year INTEGER NOT NULL,
  gpa REAL NOT NULL,
  FOREIGN KEY (department_id) REFERENCES departments (department_id)
)""",
    """CREATE TABLE courses (
  course_id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  department_id INTEGER NOT NULL,
  instructor_id INTEGER NOT NULL,
  credits INTEGER NOT NULL,
  FOREIGN KEY (department_id) REFERENCES departments (department_id),
  FOREIGN KEY (instructor_id) REFERENCES instructors (instructor_id)
)""",
    """CREATE TABLE enrollments (
  student_id INTEGER NOT NULL,
  course_id INTEGER NOT NULL,
  grade TEXT NOT NULL,
  PRIMARY KEY (student_id, course_id),
  FOREIGN KEY (student_id) REFERENCES students (student_id),
  FOREIGN KEY (course_id) REFERENCES courses (course_id)
)""",
)

# Department -> (building, course titles).
DEPARTMENTS = {
    "Computer Science": (
        "Turing Hall",
        ("Introduction to Programming", "Data Structures", "Algorithms", "Operating Systems", "Machine Learning"),
    ),
    "Mathematics": (
        "Euler Hall",
        ("Calculus I", "Linear Algebra", "Probability Theory", "Number Theory", "Real Analysis"),
    ),
    "Physics": (
        "Curie Building",
        ("Classical Mechanics", "Electromagnetism", "Quantum Physics", "Thermodynamics", "Astrophysics"),
    ),
    "Biology": ("Darwin Hall", ("Cell Biology", "Genetics", "Ecology", "Microbiology", "Evolutionary Biology")),
    "Chemistry": (
        "Mendeleev Lab",
        ("General Chemistry", "Organic Chemistry", "Biochemistry", "Physical Chemistry", "Analytical Chemistry"),
    ),
    "History": (
        "Gibbon House",
        ("World History", "Ancient Rome", "Medieval Europe", "Modern China", "History of Science"),
    ),
    "Economics": ("Keynes Hall", ("Microeconomics", "Macroeconomics", "Econometrics", "Game Theory", "Public Finance")),
    "Psychology": (
        "James Building",
        (
            "Introduction to Psychology",
            "Cognitive Psychology",
            "Social Psychology",
            "Developmental Psychology",
            "Research Methods",
        ),
    ),
}
GRADES = ("A", "B", "C", "D", "F")


def populate(rng: random.Random) -> Rows:
    budgets = rng.sample(range(400, 2500), len(DEPARTMENTS))
    departments = [
        (i + 1, name, building, budget * 1000)
        for i, ((name, (building, _)), budget) in enumerate(zip(DEPARTMENTS.items(), budgets))
    ]
    names = people(rng, 32 + 120)
    # Distinct salaries and GPAs: "the highest paid" and "the top 3 by GPA" always have one answer.
    salaries = rng.sample(range(110, 301), 32)
    instructors = [
        (i + 1, names[i], i % len(departments) + 1, salary * 500, rng.randint(1995, 2023))
        for i, salary in enumerate(salaries)
    ]
    gpas = rng.sample(range(200, 401), 120)
    students = [
        (i + 1, names[32 + i], rng.randint(1, len(departments)), rng.randint(2019, 2024), gpa / 100)
        for i, gpa in enumerate(gpas)
    ]
    courses: list[tuple] = []
    for department_id, (_, (_, titles)) in enumerate(DEPARTMENTS.items(), start=1):
        staff = [row[0] for row in instructors if row[2] == department_id]
        for title in titles:
            instructor_id = rng.choice(staff)
            courses.append((len(courses) + 1, title, department_id, instructor_id, rng.choice((2, 3, 4, 5))))
    # Some students take no course yet, so that "not enrolled" questions have answers.
    active = rng.sample(range(1, len(students) + 1), 105)
    seats = sorted(rng.sample([(s, c[0]) for s in sorted(active) for c in courses], 300))
    enrollments = [(s, c, rng.choices(GRADES, weights=(30, 35, 20, 10, 5))[0]) for s, c in seats]
    return {
        "departments": departments,
        "instructors": instructors,
        "students": students,
        "courses": courses,
        "enrollments": enrollments,
    }


TEMPLATES = (
    # basic
    Template(
        "instructors_paid_above",
        "SELECT name FROM instructors WHERE salary > {salary}",
        (
            "Which instructors earn more than {salary}?",
            "List the names of instructors with a salary above {salary}.",
            "Show the instructors whose salary is greater than {salary}.",
            "What are the names of instructors paid more than {salary}?",
        ),
        values="SELECT salary FROM instructors",
    ),
    Template(
        "student_gpa",
        "SELECT gpa FROM students WHERE name = '{student}'",
        (
            "What is the GPA of {student}?",
            "Show the GPA of the student {student}.",
            "Give the grade point average of {student}.",
            "What GPA does {student} have?",
        ),
        values="SELECT name AS student FROM students",
    ),
    Template(
        "year_students_above_gpa",
        "SELECT name FROM students WHERE enrollment_year = {year} AND gpa > {gpa}",
        (
            "Which students who enrolled in {year} have a GPA above {gpa}?",
            "List the students enrolled in {year} with a GPA higher than {gpa}.",
            "Show the names of students from the {year} intake whose GPA exceeds {gpa}.",
            "What are the names of students who started in {year} with a GPA over {gpa}?",
        ),
        values="SELECT enrollment_year AS year, CAST(gpa * 2 AS INTEGER) / 2.0 AS gpa FROM students",
    ),
    # aggregation
    Template(
        "count_students_of_year",
        "SELECT COUNT(*) FROM students WHERE enrollment_year = {year}",
        (
            "How many students enrolled in {year}?",
            "Count the students who started in {year}.",
            "What is the number of students from the {year} intake?",
            "How many students have {year} as their enrollment year?",
        ),
        values="SELECT enrollment_year AS year FROM students",
    ),
    Template(
        "salary_statistic_hired_after",
        "SELECT {agg}(salary) FROM instructors WHERE hire_year > {year}",
        (
            "What is the {agg_word} salary of instructors hired after {year}?",
            "Find the {agg_word} salary among instructors hired after {year}.",
            "Show the {agg_word} instructor salary for hires after {year}.",
            "For instructors hired after {year}, what is the {agg_word} salary?",
        ),
        values="SELECT hire_year AS year FROM instructors",
        choices=(AGGREGATES,),
    ),
    Template(
        "count_per_year_above_gpa",
        "SELECT enrollment_year, COUNT(*) FROM students WHERE gpa > {gpa} GROUP BY enrollment_year",
        (
            "For each enrollment year, how many students have a GPA above {gpa}?",
            "Count the students with a GPA over {gpa} in each enrollment year.",
            "How many students per enrollment year have a GPA higher than {gpa}?",
            "Show each enrollment year with its number of students whose GPA exceeds {gpa}.",
        ),
        values="SELECT gpa FROM students",
    ),
    # ordering
    Template(
        "top_students_by_gpa",
        "SELECT name FROM students ORDER BY gpa {dir} LIMIT {k}",
        (
            "Which {k} students have the {sup} GPA?",
            "List the {k} students with the {sup} GPA.",
            "Show the names of the {k} students with the {sup} grade point average.",
            "Who are the {k} students with the {sup} GPA?",
        ),
        choices=(superlatives("highest", "lowest"), TOP_K),
    ),
    Template(
        "extreme_salary_hired_after",
        "SELECT name FROM instructors WHERE hire_year > {year} ORDER BY salary {dir} LIMIT 1",
        (
            "Who is the {sup} paid instructor hired after {year}?",
            "Which instructor hired after {year} has the {sup} salary?",
            "Find the instructor with the {sup} salary among those hired after {year}.",
            "Show the name of the {sup} paid instructor hired after {year}.",
        ),
        values="SELECT hire_year AS year FROM instructors",
        choices=(superlatives("highest", "lowest"),),
    ),
    Template(
        "top_students_of_year_by_gpa",
        "SELECT name FROM students WHERE enrollment_year = {year} ORDER BY gpa {dir} LIMIT {k}",
        (
            "Which {k} students enrolled in {year} have the {sup} GPA?",
            "List the {k} students from the {year} intake with the {sup} GPA.",
            "Show the {k} students with the {sup} GPA among those enrolled in {year}.",
            "Who are the {k} students who started in {year} with the {sup} GPA?",
        ),
        values="SELECT enrollment_year AS year FROM students",
        choices=(superlatives("highest", "lowest"), TOP_K),
    ),
    # join
    Template(
        "department_students_of_year",
        "SELECT T1.name FROM students AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
        " WHERE T2.name = '{department}' AND T1.enrollment_year = {year}",
        (
            "Which {department} students enrolled in {year}?",
            "List the students majoring in {department} who enrolled in {year}.",
            "Show the names of {department} majors from the {year} intake.",
            "What are the names of students in the {department} department who started in {year}?",
        ),
        values="SELECT T2.name AS department, T1.enrollment_year AS year FROM students AS T1"
        " JOIN departments AS T2 ON T1.department_id = T2.department_id",
    ),
    Template(
        "courses_of_instructor",
        "SELECT T1.title FROM courses AS T1 JOIN instructors AS T2 ON T1.instructor_id = T2.instructor_id"
        " WHERE T2.name = '{instructor}'",
        (
            "Which courses does {instructor} teach?",
            "List the titles of courses taught by {instructor}.",
            "Show the courses that {instructor} teaches.",
            "What are the titles of the courses taught by {instructor}?",
        ),
        values="SELECT T2.name AS instructor FROM courses AS T1 JOIN instructors AS T2"
        " ON T1.instructor_id = T2.instructor_id",
    ),
    Template(
        "count_students_in_course",
        "SELECT COUNT(*) FROM enrollments AS T1 JOIN courses AS T2 ON T1.course_id = T2.course_id"
        " WHERE T2.title = '{course}'",
        (
            "How many students are enrolled in {course}?",
            "Count the students taking {course}.",
            "What is the number of enrollments in {course}?",
            "How many students take the course {course}?",
        ),
        values="SELECT title AS course FROM courses",
    ),
    # nested
    Template(
        "students_with_higher_gpa_than",
        "SELECT name FROM students WHERE gpa > (SELECT gpa FROM students WHERE name = '{student}')",
        (
            "Which students have a higher GPA than {student}?",
            "List the students whose GPA is above that of {student}.",
            "Show the students who have a better GPA than {student}.",
            "Who has a higher GPA than {student}?",
        ),
        # Strong students only, so that answers stay a short list.
        values="SELECT name AS student FROM students WHERE gpa >= 3.2",
    ),
    Template(
        "year_students_without_courses",
        "SELECT name FROM students WHERE enrollment_year = {year}"
        " AND student_id NOT IN (SELECT student_id FROM enrollments)",
        (
            "Which students who enrolled in {year} are not taking any course?",
            "List the students from the {year} intake with no course enrollments.",
            "Show the students who started in {year} and have no enrollments.",
            "Who enrolled in {year} but takes no courses?",
        ),
        values="SELECT enrollment_year AS year FROM students",
    ),
    Template(
        "year_students_with_grade",
        "SELECT name FROM students WHERE enrollment_year = {year}"
        " AND student_id IN (SELECT student_id FROM enrollments WHERE grade = '{grade}')",
        (
            "Which students who enrolled in {year} received the grade {grade}?",
            "List the students from the {year} intake who got grade {grade} in some course.",
            "Show the students who started in {year} with at least one {grade} grade.",
            "Who among the students enrolled in {year} has received grade {grade}?",
        ),
        values="SELECT T1.enrollment_year AS year, T2.grade FROM students AS T1 JOIN enrollments AS T2"
        " ON T1.student_id = T2.student_id",
    ),
)


# ------------------------------------------------------------------------------ follow-up conversations

_STUDENTS = (
    "SELECT T1.name FROM students AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
    " WHERE T2.name = '{department}'"
)
_INSTRUCTORS = (
    "SELECT T1.name FROM instructors AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
    " WHERE T2.name = '{department}'"
)
_COURSES = (
    "SELECT T1.title FROM courses AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
    " WHERE T2.name = '{department}'"
)

CONVERSATIONS = (
    Conversation(
        "students_of_department_then_year",
        "SELECT T2.name AS department, T1.enrollment_year AS year FROM students AS T1 JOIN departments AS T2"
        " ON T1.department_id = T2.department_id",
        (
            Step(
                _STUDENTS,
                (
                    "Who studies in the {department} department?",
                    "Show me the students of {department}.",
                    "Which students belong to {department}?",
                ),
            ),
            Step(
                _STUDENTS + " AND T1.enrollment_year = {year}",
                ("Only those who enrolled in {year}.", "Just the {year} intake."),
            ),
            Step(
                _STUDENTS + " AND T1.enrollment_year = {year} ORDER BY T1.gpa DESC",
                ("Sort them by GPA, highest first.", "Rank them by GPA, best first."),
            ),
            Step(
                "SELECT COUNT(*) FROM students AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
                " WHERE T2.name = '{department}' AND T1.enrollment_year = {year}",
                ("How many of them are there?", "How many students is that?"),
            ),
        ),
    ),
    Conversation(
        "instructors_of_department_then_hired",
        "SELECT T2.name AS department, T1.hire_year / 5 * 5 AS year FROM instructors AS T1 JOIN departments AS T2"
        " ON T1.department_id = T2.department_id",
        (
            Step(
                _INSTRUCTORS,
                (
                    "Who teaches in the {department} department?",
                    "Show me the instructors of {department}.",
                    "Which instructors work for {department}?",
                ),
            ),
            Step(
                _INSTRUCTORS + " AND T1.hire_year >= {year}",
                ("Only those hired in {year} or later.", "Just the ones who joined from {year} on."),
            ),
            Step(
                _INSTRUCTORS + " AND T1.hire_year >= {year} ORDER BY T1.salary DESC",
                ("Order them by salary, highest first.", "Sort them by pay, best paid first."),
            ),
            Step(
                "SELECT AVG(T1.salary) FROM instructors AS T1 JOIN departments AS T2"
                " ON T1.department_id = T2.department_id WHERE T2.name = '{department}' AND T1.hire_year >= {year}",
                ("What is their average salary?", "How much do they earn on average?"),
            ),
        ),
    ),
    Conversation(
        "courses_of_department_then_credits",
        "SELECT T2.name AS department, T1.credits AS credits FROM courses AS T1 JOIN departments AS T2"
        " ON T1.department_id = T2.department_id",
        (
            Step(
                _COURSES,
                (
                    "What courses does {department} teach?",
                    "Show me the courses run by {department}.",
                    "Which courses come from the {department} department?",
                ),
            ),
            Step(
                _COURSES + " AND T1.credits = {credits}",
                ("Only the {credits}-credit ones.", "Just those worth {credits} credits."),
            ),
            Step(
                "SELECT COUNT(*) FROM courses AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
                " WHERE T2.name = '{department}' AND T1.credits = {credits}",
                ("How many are there?", "How many courses is that?"),
            ),
        ),
    ),
)

DOMAIN = Domain("university", SCHEMA, populate, TEMPLATES, CONVERSATIONS)
