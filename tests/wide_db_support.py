"""A SQLite database whose schema does not fit a small prompt: twelve tables of a shop, linked by
foreign keys, with a few text values to find."""

from __future__ import annotations

import sqlite3
from pathlib import Path

TABLES = {
    "customers": ["customer_id INTEGER PRIMARY KEY", "full_name TEXT", "city TEXT", "country TEXT", "email TEXT",
                  "phone TEXT", "signup_date TEXT", "loyalty_tier TEXT"],
    "categories": ["category_id INTEGER PRIMARY KEY", "category_name TEXT", "description TEXT"],
    "suppliers": ["supplier_id INTEGER PRIMARY KEY", "company_name TEXT", "contact_name TEXT", "country TEXT",
                  "rating REAL"],
    "products": ["product_id INTEGER PRIMARY KEY", "product_name TEXT", "unit_price REAL", "units_in_stock INTEGER",
                 "category_id INTEGER REFERENCES categories(category_id)",
                 "supplier_id INTEGER REFERENCES suppliers(supplier_id)", "discontinued INTEGER"],
    "employees": ["employee_id INTEGER PRIMARY KEY", "first_name TEXT", "last_name TEXT", "title TEXT",
                  "hire_date TEXT", "salary REAL", "department_id INTEGER REFERENCES departments(department_id)"],
    "departments": ["department_id INTEGER PRIMARY KEY", "department_name TEXT", "budget REAL"],
    "orders": ["order_id INTEGER PRIMARY KEY", "customer_id INTEGER REFERENCES customers(customer_id)",
               "employee_id INTEGER REFERENCES employees(employee_id)", "order_date TEXT", "status TEXT",
               "shipping_fee REAL"],
    "order_items": ["order_id INTEGER REFERENCES orders(order_id)",
                    "product_id INTEGER REFERENCES products(product_id)", "quantity INTEGER", "unit_price REAL"],
    "warehouses": ["warehouse_id INTEGER PRIMARY KEY", "warehouse_name TEXT", "city TEXT", "capacity INTEGER"],
    "shipments": ["shipment_id INTEGER PRIMARY KEY", "order_id INTEGER REFERENCES orders(order_id)",
                  "warehouse_id INTEGER REFERENCES warehouses(warehouse_id)", "carrier TEXT", "shipped_date TEXT"],
    "payments": ["payment_id INTEGER PRIMARY KEY", "order_id INTEGER REFERENCES orders(order_id)",
                 "method TEXT", "amount REAL", "paid_date TEXT"],
    "reviews": ["review_id INTEGER PRIMARY KEY", "product_id INTEGER REFERENCES products(product_id)",
                "customer_id INTEGER REFERENCES customers(customer_id)", "stars INTEGER", "review_text TEXT"],
}  # fmt: skip

CUSTOMERS = [
    (1, "Frank Müller", "Berlin", "Germany", "frank@example.com", "555-0101", "2021-03-04", "gold"),
    (2, "Aiko Tanaka", "Osaka", "Japan", "aiko@example.com", "555-0102", "2022-07-19", "silver"),
    (3, "Maria Rossi", "Rome", "Italy", "maria@example.com", "555-0103", "2020-11-30", "bronze"),
    (4, "John Smith", "Leeds", "United Kingdom", "john@example.com", "555-0104", "2023-01-15", "gold"),
]


def make_wide_db(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        for name, columns in TABLES.items():
            conn.execute(f"CREATE TABLE {name} ({', '.join(columns)})")
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", CUSTOMERS)
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, NULL, ?, ?, ?)",
            [(i, 1 + i % 4, f"2024-0{1 + i % 9}-1{i % 10}", ("shipped", "pending", "cancelled")[i % 3], 4.5 + i)
             for i in range(1, 21)],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO warehouses VALUES (?, ?, ?, ?)",
            [(1, "North Hub", "Hamburg", 900), (2, "South Hub", "Munich", 700)],
        )
    return path
