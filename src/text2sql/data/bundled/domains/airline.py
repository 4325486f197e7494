"""airline: airports, airlines, flights between airports, passengers and their bookings."""

from __future__ import annotations

import random
from datetime import date

from text2sql.data.bundled.conversations import Conversation, Step
from text2sql.data.bundled.domains.base import Domain, Rows, day, people
from text2sql.data.bundled.pairs import AGGREGATES, TOP_K, Template, superlatives

SCHEMA = (
    """CREATE TABLE airports (
  airport_code TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  country TEXT NOT NULL
)""",
    """CREATE TABLE airlines (
  airline_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  iata_code TEXT NOT NULL,
  country TEXT NOT NULL
)""",
    """CREATE TABLE flights (
  flight_id INTEGER PRIMARY KEY,
  flight_number TEXT NOT NULL,
  airline_id INTEGER NOT NULL,
  origin_code TEXT NOT NULL,
  destination_code TEXT NOT NULL,
  departure_date TEXT NOT NULL,
  duration_minutes INTEGER NOT NULL,
  FOREIGN KEY (airline_id) REFERENCES airlines (airline_id),
  FOREIGN KEY (origin_code) REFERENCES airports (airport_code),
  FOREIGN KEY (destination_code) REFERENCES airports (airport_code)
)""",
    """CREATE TABLE passengers (
  passenger_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  nationality TEXT NOT NULL,
  birth_year INTEGER NOT NULL
)""",
    """CREATE TABLE bookings (
  booking_id INTEGER PRIMARY KEY,
  flight_id INTEGER NOT NULL,
  passenger_id INTEGER NOT NULL,
  seat_class TEXT NOT NULL,
  price REAL NOT NULL,
  FOREIGN KEY (flight_id) REFERENCES flights (flight_id),
  FOREIGN KEY (passenger_id) REFERENCES passengers (passenger_id)
)""",
)

# Code -> (name, city, country, region); flights within a region are short, across regions long.
AIRPORTS = {
    "ATL": ("Hartsfield-Jackson Atlanta International", "Atlanta", "United States", "america"),
    "BOS": ("Logan International", "Boston", "United States", "america"),
    "DEN": ("Denver International", "Denver", "United States", "america"),
    "JFK": ("John F. Kennedy International", "New York", "United States", "america"),
    "LAX": ("Los Angeles International", "Los Angeles", "United States", "america"),
    "ORD": ("O'Hare International", "Chicago", "United States", "america"),
    "SEA": ("Seattle-Tacoma International", "Seattle", "United States", "america"),
    "YYZ": ("Toronto Pearson International", "Toronto", "Canada", "america"),
    "MEX": ("Mexico City International", "Mexico City", "Mexico", "america"),
    "LHR": ("Heathrow", "London", "United Kingdom", "europe"),
    "CDG": ("Charles de Gaulle", "Paris", "France", "europe"),
    "FRA": ("Frankfurt Airport", "Frankfurt", "Germany", "europe"),
    "MUC": ("Munich Airport", "Munich", "Germany", "europe"),
    "AMS": ("Amsterdam Schiphol", "Amsterdam", "Netherlands", "europe"),
    "MAD": ("Adolfo Suarez Madrid-Barajas", "Madrid", "Spain", "europe"),
    "FCO": ("Leonardo da Vinci-Fiumicino", "Rome", "Italy", "europe"),
    "DXB": ("Dubai International", "Dubai", "United Arab Emirates", "asia"),
    "NRT": ("Narita International", "Tokyo", "Japan", "asia"),
    "SIN": ("Changi Airport", "Singapore", "Singapore", "asia"),
    "SYD": ("Sydney Kingsford Smith", "Sydney", "Australia", "asia"),
}
# Typical flight minutes between regions (unordered pairs).
BLOCK_MINUTES = {
    ("america", "america"): (70, 330),
    ("europe", "europe"): (60, 170),
    ("asia", "asia"): (300, 620),
    ("america", "europe"): (420, 690),
    ("america", "asia"): (780, 1100),
    ("asia", "europe"): (400, 840),
}
AIRLINES = (
    ("Delta Air Lines", "DL", "United States"),
    ("United Airlines", "UA", "United States"),
    ("Air Canada", "AC", "Canada"),
    ("British Airways", "BA", "United Kingdom"),
    ("Air France", "AF", "France"),
    ("Lufthansa", "LH", "Germany"),
    ("KLM", "KL", "Netherlands"),
    ("Emirates", "EK", "United Arab Emirates"),
    ("Singapore Airlines", "SQ", "Singapore"),
)
NATIONALITIES = (
    "American",
    "British",
    "Canadian",
    "French",
    "German",
    "Dutch",
    "Spanish",
    "Italian",
    "Japanese",
    "Indian",
    "Brazilian",
    "Australian",
)
# Seat class -> booking price range in dollars, per hour flown.
SEAT_CLASSES = {"economy": (40, 90), "business": (180, 320), "first": (400, 650)}


def populate(rng: random.Random) -> Rows:
    airports = [(code, name, city, country) for code, (name, city, country, _) in AIRPORTS.items()]
    airlines = [(i + 1, name, iata, country) for i, (name, iata, country) in enumerate(AIRLINES)]
    codes = list(AIRPORTS)
    flights, numbers, durations = [], set(), set()
    for flight_id in range(1, 121):
        airline_id = rng.randint(1, len(airlines))
        origin, destination = rng.sample(codes, 2)
        number = f"{airlines[airline_id - 1][2]}{rng.randint(100, 999)}"
        while number in numbers:  # a flight number names one flight, as questions assume
            number = f"{airlines[airline_id - 1][2]}{rng.randint(100, 999)}"
        numbers.add(number)
        first, second = sorted((AIRPORTS[origin][3], AIRPORTS[destination][3]))
        regions = (first, second)
        minutes = rng.randint(*BLOCK_MINUTES[regions])
        while minutes in durations:  # distinct durations: "the longest flight" has one answer
            minutes += 1
        durations.add(minutes)
        flights.append(
            (
                flight_id,
                number,
                airline_id,
                origin,
                destination,
                day(rng, date(2024, 1, 1), date(2024, 12, 31)),
                minutes,
            )
        )
    passengers = [
        (i + 1, name, rng.choice(NATIONALITIES), rng.randint(1945, 2010)) for i, name in enumerate(people(rng, 100))
    ]
    # Some passengers have an account but no booking yet, for "never" questions.
    travellers = rng.sample(range(1, len(passengers) + 1), 85)
    seats = sorted(rng.sample([(f, p) for f in range(1, len(flights) + 1) for p in sorted(travellers)], 240))
    bookings, prices = [], set()
    for booking_id, (flight_id, passenger_id) in enumerate(seats, start=1):
        seat_class = rng.choices(list(SEAT_CLASSES), weights=(75, 18, 7))[0]
        low, high = SEAT_CLASSES[seat_class]
        price = round(rng.uniform(low, high) * (flights[flight_id - 1][6] / 60 + 1), 2)
        while price in prices:  # distinct prices: "the 3 cheapest bookings" has one answer
            price = round(price + 0.01, 2)
        prices.add(price)
        bookings.append((booking_id, flight_id, passenger_id, seat_class, price))
    return {
        "airports": airports,
        "airlines": airlines,
        "flights": flights,
        "passengers": passengers,
        "bookings": bookings,
    }


TEMPLATES = (
    # basic
    Template(
        "airports_in_country",
        "SELECT name FROM airports WHERE country = '{country}'",
        (
            "List the names of airports whose country is {country}.",
            "Which airports are located in {country}?",
            "Show all airports with the country {country}.",
            "What are the names of the airports in {country}?",
        ),
        values="SELECT country FROM airports",
    ),
    Template(
        "flights_longer_than_minutes",
        "SELECT flight_number FROM flights WHERE duration_minutes > {minutes}",
        (
            "Which flights last longer than {minutes} minutes?",
            "List the flight numbers of flights over {minutes} minutes long.",
            "Show the flights with a duration above {minutes} minutes.",
            "What flights take more than {minutes} minutes?",
        ),
        values="SELECT duration_minutes / 10 * 10 AS minutes FROM flights",
    ),
    Template(
        "airport_of_code",
        "SELECT name, city FROM airports WHERE airport_code = '{code}'",
        (
            "What is the name and city of airport {code}?",
            "Show the name and city of the airport with code {code}.",
            "Which airport has the code {code}, and in which city is it?",
            "Give the name and city of airport {code}.",
        ),
        values="SELECT airport_code AS code FROM airports",
    ),
    # aggregation
    Template(
        "count_flights_from",
        "SELECT COUNT(*) FROM flights WHERE origin_code = '{code}'",
        (
            "How many flights depart from {code}?",
            "Count the flights leaving from {code}.",
            "What is the number of flights departing {code}?",
            "How many flights have {code} as their origin?",
        ),
        values="SELECT origin_code AS code FROM flights",
    ),
    Template(
        "duration_statistic_from",
        "SELECT {agg}(duration_minutes) FROM flights WHERE origin_code = '{code}'",
        (
            "What is the {agg_word} duration of flights from {code}?",
            "Find the {agg_word} flight duration for departures from {code}.",
            "Show the {agg_word} duration in minutes of flights leaving {code}.",
            "For flights departing {code}, what is the {agg_word} duration?",
        ),
        values="SELECT origin_code AS code FROM flights",
        choices=(AGGREGATES,),
    ),
    Template(
        "count_per_class_above_price",
        "SELECT seat_class, COUNT(*) FROM bookings WHERE price > {price} GROUP BY seat_class",
        (
            "For each seat class, how many bookings cost more than {price}?",
            "Count the bookings priced above {price} in each seat class.",
            "How many bookings per seat class have a price over {price}?",
            "Show each seat class with its number of bookings costing more than {price}.",
        ),
        values="SELECT CAST(price / 10 AS INTEGER) * 10 AS price FROM bookings",
    ),
    Template(
        "destinations_busier_than",
        "SELECT destination_code FROM flights GROUP BY destination_code HAVING COUNT(*) > {n}",
        (
            "Which destination airports receive more than {n} flights?",
            "List the destination codes with more than {n} arriving flights.",
            "Show the airports that more than {n} flights fly to.",
            "What destinations have more than {n} flights arriving?",
        ),
        values="SELECT COUNT(*) - 1 AS n FROM flights GROUP BY destination_code HAVING n > 1",
    ),
    # ordering
    Template(
        "top_flights_by_duration",
        "SELECT flight_number FROM flights ORDER BY duration_minutes {dir} LIMIT {k}",
        (
            "List the {k} {sup} flights.",
            "What are the {k} {sup} flights?",
            "Show the flight numbers of the {k} {sup} flights.",
            "Which {k} flights are the {sup}?",
        ),
        choices=(superlatives("longest", "shortest"), TOP_K),
    ),
    Template(
        "extreme_flight_from",
        "SELECT flight_number FROM flights WHERE origin_code = '{code}' ORDER BY duration_minutes {dir} LIMIT 1",
        (
            "What is the {sup} flight departing from {code}?",
            "Which flight from {code} is the {sup}?",
            "Find the {sup} flight leaving {code}.",
            "Show the flight number of the {sup} flight from {code}.",
        ),
        values="SELECT origin_code AS code FROM flights",
        choices=(superlatives("longest", "shortest"),),
    ),
    Template(
        "top_bookings_of_class_by_price",
        "SELECT booking_id, price FROM bookings WHERE seat_class = '{seat_class}' ORDER BY price {dir} LIMIT {k}",
        (
            "Give the ids and prices of the {k} {sup} {seat_class} bookings.",
            "List the {k} {sup} bookings in {seat_class} class with their prices.",
            "Show the ids and prices of the {k} {sup} {seat_class} class bookings.",
            "What are the ids and prices of the {k} {sup} bookings in {seat_class}?",
        ),
        values="SELECT seat_class FROM bookings",
        choices=(superlatives("most expensive", "cheapest"), TOP_K),
    ),
    # join
    Template(
        "airline_flights_from",
        "SELECT T1.flight_number FROM flights AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id"
        " WHERE T2.name = '{airline}' AND T1.origin_code = '{code}'",
        (
            "List the {airline} flights departing from {code}.",
            "Which flights from {code} are operated by {airline}?",
            "Show the flight numbers of {airline} flights leaving {code}.",
            "What flights does {airline} operate out of {code}?",
        ),
        values="SELECT T2.name AS airline, T1.origin_code AS code FROM flights AS T1 JOIN airlines AS T2"
        " ON T1.airline_id = T2.airline_id",
    ),
    Template(
        "passengers_on_flight",
        "SELECT T1.name FROM passengers AS T1 JOIN bookings AS T2 ON T1.passenger_id = T2.passenger_id"
        " JOIN flights AS T3 ON T2.flight_id = T3.flight_id WHERE T3.flight_number = '{flight_number}'",
        (
            "Which passengers are booked on flight {flight_number}?",
            "List the names of passengers on flight {flight_number}.",
            "Show all passengers with a booking on flight {flight_number}.",
            "Who is flying on flight {flight_number}?",
        ),
        values="SELECT flight_number FROM flights",
    ),
    Template(
        "flights_to_city",
        "SELECT T1.flight_number, T1.departure_date FROM flights AS T1 JOIN airports AS T2"
        " ON T1.destination_code = T2.airport_code WHERE T2.city = '{city}'",
        (
            "Which flights go to {city}, and on what dates?",
            "List the flight numbers and dates of flights to {city}.",
            "Show the flights arriving in {city} with their departure dates.",
            "Give the number and departure date of every flight to {city}.",
        ),
        values="SELECT city FROM airports",
    ),
    # nested
    Template(
        "flights_longer_than_flight",
        "SELECT flight_number FROM flights WHERE duration_minutes >"
        " (SELECT duration_minutes FROM flights WHERE flight_number = '{flight_number}')",
        (
            "Which flights are longer than flight {flight_number}?",
            "List the flights with a longer duration than {flight_number}.",
            "Show the flight numbers of flights that last longer than {flight_number}.",
            "What flights take more time than flight {flight_number}?",
        ),
        # Long flights only, so that answers stay a short list.
        values="SELECT flight_number FROM flights WHERE duration_minutes > 420",
    ),
    Template(
        "nationality_passengers_without_bookings",
        "SELECT name FROM passengers WHERE nationality = '{nationality}'"
        " AND passenger_id NOT IN (SELECT passenger_id FROM bookings)",
        (
            "Which {nationality} passengers have no bookings?",
            "List the passengers of {nationality} nationality who never booked a flight.",
            "Show the {nationality} passengers without any booking.",
            "Who are the {nationality} passengers that have not booked anything?",
        ),
        values="SELECT nationality FROM passengers",
    ),
    Template(
        "airlines_flying_to",
        "SELECT name FROM airlines WHERE airline_id IN"
        " (SELECT airline_id FROM flights WHERE destination_code = '{code}')",
        (
            "Which airlines fly to {code}?",
            "List the airlines with flights to {code}.",
            "Show the names of airlines that have a flight arriving at {code}.",
            "What airlines operate flights into {code}?",
        ),
        values="SELECT destination_code AS code FROM flights",
    ),
)


# ------------------------------------------------------------------------------ follow-up conversations

_FLIGHTS_FROM = "SELECT flight_number FROM flights WHERE origin_code = '{code}'"
_FLIGHTS_OF = (
    "SELECT T1.flight_number FROM flights AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id"
    " WHERE T2.name = '{airline}'"
)
_COUNT_OF = (
    "SELECT COUNT(*) FROM flights AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id"
    " WHERE T2.name = '{airline}'"
)
_PASSENGERS = "SELECT name FROM passengers WHERE nationality = '{nationality}'"

CONVERSATIONS = (
    Conversation(
        "flights_from_then_longer",
        "SELECT origin_code AS code, duration_minutes / 60 * 60 AS minutes FROM flights",
        (
            Step(
                _FLIGHTS_FROM,
                (
                    "Which flights take off from {code}?",
                    "Show me the flights out of {code}.",
                    "What flights leave {code}?",
                ),
            ),
            Step(
                _FLIGHTS_FROM + " AND duration_minutes > {minutes}",
                (
                    "Only those longer than {minutes} minutes.",
                    "Which of them take more than {minutes} minutes?",
                    "Keep just the ones over {minutes} minutes.",
                ),
            ),
            Step(
                _FLIGHTS_FROM + " AND duration_minutes > {minutes} ORDER BY duration_minutes DESC",
                ("Sort them by duration, longest first.", "Order those from the longest to the shortest."),
            ),
            Step(
                "SELECT COUNT(*) FROM flights WHERE origin_code = '{code}' AND duration_minutes > {minutes}",
                ("How many are there?", "How many flights is that?", "Count them."),
            ),
        ),
    ),
    Conversation(
        "airline_flights_then_first_half",
        "SELECT T2.name AS airline, T1.destination_code AS dest FROM flights AS T1 JOIN airlines AS T2"
        " ON T1.airline_id = T2.airline_id WHERE T1.departure_date < '2024-07-01'",
        (
            Step(
                _FLIGHTS_OF,
                (
                    "What flights does {airline} operate?",
                    "Show me the flights flown by {airline}.",
                    "Which flights are run by {airline}?",
                ),
            ),
            Step(
                _FLIGHTS_OF + " AND T1.departure_date < '2024-07-01'",
                ("Only the ones departing before July.", "Just those in the first half of 2024."),
            ),
            Step(
                _FLIGHTS_OF + " AND T1.departure_date < '2024-07-01' AND T1.destination_code = '{dest}'",
                ("Which of those fly to {dest}?", "Keep only the ones going to {dest}."),
            ),
            Step(
                _COUNT_OF + " AND T1.departure_date < '2024-07-01' AND T1.destination_code = '{dest}'",
                ("How many flights is that?", "How many are there?"),
            ),
        ),
    ),
    Conversation(
        "passengers_then_younger",
        "SELECT nationality, birth_year / 10 * 10 AS decade FROM passengers",
        (
            Step(
                _PASSENGERS,
                (
                    "Which passengers are {nationality}?",
                    "Show me the {nationality} passengers.",
                    "Who among the passengers is {nationality}?",
                ),
            ),
            Step(
                _PASSENGERS + " AND birth_year >= {decade}",
                ("Only those born in {decade} or later.", "Just the ones born from {decade} on."),
            ),
            Step(
                _PASSENGERS + " AND birth_year >= {decade} ORDER BY birth_year ASC",
                ("Order them from oldest to youngest.", "Sort them by birth year, oldest first."),
            ),
            Step(
                "SELECT COUNT(*) FROM passengers WHERE nationality = '{nationality}' AND birth_year >= {decade}",
                ("How many of them are there?", "Count them."),
            ),
        ),
    ),
)

DOMAIN = Domain("airline", SCHEMA, populate, TEMPLATES, CONVERSATIONS)
