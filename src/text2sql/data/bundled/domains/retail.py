"""retail: an online store's customers, products, orders and order lines."""

from __future__ import annotations

import random
from datetime import date

from text2sql.data.bundled.conversations import Conversation, Step
from text2sql.data.bundled.domains.base import Domain, Rows, day, people
from text2sql.data.bundled.pairs import AGGREGATES, TOP_K, Template, superlatives

SCHEMA = (
    """CREATE TABLE customers (
  customer_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  email TEXT NOT NULL,
  joined_date TEXT NOT NULL
)""",
    """CREATE TABLE products (
  product_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price REAL NOT NULL,
  stock INTEGER NOT NULL
)""",
    """CREATE TABLE orders (
  order_id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  order_date TEXT NOT NULL,
  status TEXT NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (customer_id)
)""",
    """CREATE TABLE order_items (
  order_id INTEGER NOT NULL,
  product_id INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id),
  FOREIGN KEY (order_id) REFERENCES orders (order_id),
  FOREIGN KEY (product_id) REFERENCES products (product_id)
)""",
)

CITIES = (
    "Austin",
    "Boston",
    "Chicago",
    "Denver",
    "Miami",
    "Portland",
    "Seattle",
    "Atlanta",
    "Phoenix",
    "Dallas",
    "Nashville",
    "San Diego",
)
# Category -> (products, price range in dollars).
CATALOGUE = {
    "Electronics": (
        (
            "Wireless Earbuds",
            "Bluetooth Speaker",
            "USB-C Charger",
            "Smart Watch",
            "Action Camera",
            "Noise Cancelling Headphones",
            "Portable Monitor",
        ),
        (19, 399),
    ),
    "Furniture": (
        ("Oak Bookshelf", "Walnut Desk", "Velvet Armchair", "Bar Stool", "Floor Lamp", "Coffee Table"),
        (39, 649),
    ),
    "Kitchen": (
        (
            "Steel Kettle",
            "Chef Knife",
            "Cast Iron Skillet",
            "Espresso Maker",
            "Salad Spinner",
            "Bamboo Cutting Board",
            "Stand Mixer",
        ),
        (9, 299),
    ),
    "Toys": (("Building Blocks", "Puzzle Cube", "Plush Bear", "Toy Train", "Kite"), (5, 89)),
    "Books": (
        (
            "Atlas of the World",
            "Cookbook Classics",
            "Mystery Novel",
            "Science Encyclopedia",
            "Poetry Collection",
            "Travel Guide",
        ),
        (7, 59),
    ),
    "Garden": (("Garden Hose", "Pruning Shears", "Ceramic Planter", "Bird Feeder", "Lawn Sprinkler"), (8, 129)),
    "Sports": (
        ("Yoga Mat", "Tennis Racket", "Running Shoes", "Camping Tent", "Mountain Bike", "Dumbbell Set", "Water Bottle"),
        (9, 899),
    ),
    "Clothing": (("Denim Jacket", "Wool Scarf", "Rain Coat", "Linen Shirt", "Leather Belt"), (12, 189)),
}
STATUSES = ("delivered", "shipped", "pending", "cancelled")


def populate(rng: random.Random) -> Rows:
    names = people(rng, 64)
    customers = [
        (
            i + 1,
            name,
            rng.choice(CITIES),
            name.lower().replace(" ", ".") + "@example.com",
            day(rng, date(2019, 1, 1), date(2023, 12, 31)),
        )
        for i, name in enumerate(names)
    ]
    products: list[tuple] = []
    prices: set[float] = set()
    for category, (items, (low, high)) in CATALOGUE.items():
        for item in items:
            price = rng.randint(low, high) + 0.99
            while price in prices:  # distinct prices: "the most expensive" always has one answer
                price += 1
            prices.add(price)
            products.append((len(products) + 1, item, category, price))
    stocks = rng.sample(range(0, 500), len(products))  # distinct for the same reason
    products = [row + (stock,) for row, stock in zip(products, stocks)]
    # A quarter of the customers never order and some products never sell, so that "never" questions
    # have answers.
    buyers = rng.sample(range(1, len(customers) + 1), 48)
    sold = rng.sample(range(1, len(products) + 1), 42)
    orders: list[tuple] = []
    order_items: list[tuple] = []
    for order_id in range(1, 151):
        status = rng.choices(STATUSES, weights=(55, 20, 15, 10))[0]
        orders.append((order_id, rng.choice(buyers), day(rng, date(2022, 1, 1), date(2024, 6, 30)), status))
        for product_id in sorted(rng.sample(sold, rng.randint(1, 3))):
            order_items.append((order_id, product_id, rng.choices((1, 2, 3, 4), weights=(60, 25, 10, 5))[0]))
    return {"customers": customers, "products": products, "orders": orders, "order_items": order_items}


TEMPLATES = (
    # basic
    Template(
        "customers_in_city",
        "SELECT name FROM customers WHERE city = '{city}'",
        (
            "List the names of customers from {city}.",
            "What are the names of the customers who live in {city}?",
            "Which customers live in {city}?",
            "Show all customers based in {city}.",
        ),
        values="SELECT city FROM customers",
    ),
    Template(
        "category_products_below_price",
        "SELECT name FROM products WHERE category = '{category}' AND price < {price}",
        (
            "Which {category} products cost less than {price}?",
            "List the {category} products priced below {price}.",
            "Show the names of {category} products with a price under {price}.",
            "What are the {category} products that cost less than {price}?",
        ),
        values="SELECT category, CAST(price AS INTEGER) + 1 AS price FROM products",
    ),
    Template(
        "product_price",
        "SELECT price FROM products WHERE name = '{product}'",
        (
            "What is the price of the {product}?",
            "How much does the {product} cost?",
            "Give the price of {product}.",
            "Show the price of the product called {product}.",
        ),
        values="SELECT name AS product FROM products",
    ),
    # aggregation
    Template(
        "count_customers_in_city",
        "SELECT COUNT(*) FROM customers WHERE city = '{city}'",
        (
            "How many customers live in {city}?",
            "Count the customers from {city}.",
            "What is the number of customers based in {city}?",
            "How many customers are there in {city}?",
        ),
        values="SELECT city FROM customers",
    ),
    Template(
        "price_statistic_of_category",
        "SELECT {agg}(price) FROM products WHERE category = '{category}'",
        (
            "What is the {agg_word} price of {category} products?",
            "Find the {agg_word} price among products in the {category} category.",
            "Show the {agg_word} price of the {category} products.",
            "What is the {agg_word} price in the {category} category?",
        ),
        values="SELECT category FROM products",
        choices=(AGGREGATES,),
    ),
    Template(
        "count_per_category_above_price",
        "SELECT category, COUNT(*) FROM products WHERE price > {price} GROUP BY category",
        (
            "For each category, how many products cost more than {price}?",
            "Count the products priced above {price} in each category.",
            "How many products per category have a price over {price}?",
            "Show each category with its number of products costing more than {price}.",
        ),
        values="SELECT CAST(price AS INTEGER) AS price FROM products",
    ),
    Template(
        "cities_with_more_customers_than",
        "SELECT city FROM customers GROUP BY city HAVING COUNT(*) > {n}",
        (
            "Which cities have more than {n} customers?",
            "List the cities with more than {n} customers.",
            "Show the cities where more than {n} customers live.",
            "In which cities do more than {n} customers live?",
        ),
        values="SELECT COUNT(*) - 1 AS n FROM customers GROUP BY city HAVING n > 1",
    ),
    # ordering
    Template(
        "top_products_by_price",
        "SELECT name FROM products ORDER BY price {dir} LIMIT {k}",
        (
            "List the {k} {sup} products.",
            "What are the {k} {sup} products?",
            "Show the names of the {k} {sup} products.",
            "Which {k} products are the {sup}?",
        ),
        choices=(superlatives("most expensive", "cheapest"), TOP_K),
    ),
    Template(
        "extreme_product_in_category",
        "SELECT name FROM products WHERE category = '{category}' ORDER BY price {dir} LIMIT 1",
        (
            "What is the {sup} product in the {category} category?",
            "Which {category} product is the {sup}?",
            "Find the {sup} product among {category} products.",
            "Show the name of the {sup} {category} product.",
        ),
        values="SELECT category FROM products",
        choices=(superlatives("most expensive", "cheapest"),),
    ),
    Template(
        "top_products_by_stock",
        "SELECT name, stock FROM products ORDER BY stock {dir} LIMIT {k}",
        (
            "Which {k} products have the {sup} units in stock, and how many?",
            "List the {k} products with the {sup} units in stock, with their stock.",
            "Show the names and stock of the {k} products with the {sup} stock.",
            "What are the {k} products with the {sup} items in stock, and their stock levels?",
        ),
        choices=(superlatives("most", "fewest"), TOP_K),
    ),
    # join
    Template(
        "orders_of_customer",
        "SELECT T1.order_id, T1.order_date FROM orders AS T1 JOIN customers AS T2"
        " ON T1.customer_id = T2.customer_id WHERE T2.name = '{customer}'",
        (
            "List the ids and dates of the orders placed by {customer}.",
            "Show the order ids and order dates for {customer}.",
            "Which orders did {customer} place, and on what dates?",
            "Give the id and date of every order made by {customer}.",
        ),
        values="SELECT name AS customer FROM customers",
    ),
    Template(
        "city_customers_with_status",
        "SELECT DISTINCT T1.name FROM customers AS T1 JOIN orders AS T2"
        " ON T1.customer_id = T2.customer_id WHERE T1.city = '{city}' AND T2.status = '{status}'",
        (
            "Which customers from {city} have {status} orders?",
            "List the customers in {city} with an order whose status is {status}.",
            "Show the names of customers from {city} who have {status} orders.",
            "What are the names of {city} customers with orders that are {status}?",
        ),
        values="SELECT T1.city, T2.status FROM customers AS T1 JOIN orders AS T2 ON T1.customer_id = T2.customer_id",
    ),
    Template(
        "units_ordered_of_product",
        "SELECT SUM(T1.quantity) FROM order_items AS T1 JOIN products AS T2"
        " ON T1.product_id = T2.product_id WHERE T2.name = '{product}'",
        (
            "How many units of the {product} have been ordered in total?",
            "What is the total quantity ordered of {product}?",
            "Find the total number of {product} units ordered.",
            "How many {product} units were sold across all orders?",
        ),
        values="SELECT name AS product FROM products",
    ),
    # nested
    Template(
        "products_pricier_than",
        "SELECT name FROM products WHERE price > (SELECT price FROM products WHERE name = '{product}')",
        (
            "Which products cost more than the {product}?",
            "List the products that are more expensive than {product}.",
            "Show the names of products priced higher than the {product}.",
            "What products have a higher price than {product}?",
        ),
        values="SELECT name AS product FROM products",
    ),
    Template(
        "city_customers_without_orders",
        "SELECT name FROM customers WHERE city = '{city}' AND customer_id NOT IN (SELECT customer_id FROM orders)",
        (
            "Which customers from {city} have never placed an order?",
            "List the customers in {city} without any orders.",
            "Show the names of {city} customers who have no orders.",
            "Who are the customers from {city} that never ordered anything?",
        ),
        values="SELECT city FROM customers",
    ),
    Template(
        "customers_ordering_on_date",
        "SELECT name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE order_date = '{date}')",
        (
            "Which customers placed an order on {date}?",
            "List the names of customers who ordered on {date}.",
            "Show the customers with an order dated {date}.",
            "Who placed orders on {date}?",
        ),
        values="SELECT order_date AS date FROM orders",
    ),
)


# ------------------------------------------------------------------------------ follow-up conversations

_ORDERS = (
    "SELECT T1.order_id FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id"
    " WHERE T2.city = '{city}'"
)
_PRODUCTS = "SELECT name FROM products WHERE category = '{category}'"
_JOINED = "SELECT name FROM customers WHERE joined_date LIKE '{year}-%'"

CONVERSATIONS = (
    Conversation(
        "orders_from_city_then_year",
        "SELECT T2.city AS city, substr(T1.order_date, 1, 4) AS year, T1.status AS status FROM orders AS T1"
        " JOIN customers AS T2 ON T1.customer_id = T2.customer_id",
        (
            Step(
                _ORDERS,
                (
                    "Which orders came from customers in {city}?",
                    "Show me the orders placed from {city}.",
                    "What orders do the customers of {city} have?",
                ),
            ),
            Step(
                _ORDERS + " AND T1.order_date LIKE '{year}-%'",
                ("Only those from {year}.", "Just the ones placed in {year}."),
            ),
            Step(
                _ORDERS + " AND T1.order_date LIKE '{year}-%' AND T1.status = '{status}'",
                ("Which of them are {status}?", "Keep just the {status} ones."),
            ),
            Step(
                "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id"
                " WHERE T2.city = '{city}' AND T1.order_date LIKE '{year}-%' AND T1.status = '{status}'",
                ("How many is that?", "How many orders are there?"),
            ),
        ),
    ),
    Conversation(
        "products_in_category_then_price",
        "SELECT category, CAST(price / 50 AS INTEGER) * 50 AS price FROM products",
        (
            Step(
                _PRODUCTS,
                (
                    "What do we sell in {category}?",
                    "Show me the products of the {category} category.",
                    "Which items are in {category}?",
                ),
            ),
            Step(
                _PRODUCTS + " AND price > {price}",
                ("Only those costing more than {price}.", "Just the ones priced above {price}."),
            ),
            Step(
                _PRODUCTS + " AND price > {price} ORDER BY price ASC",
                ("Sort them by price, cheapest first.", "Order them from the cheapest up."),
            ),
            Step(
                "SELECT AVG(price) FROM products WHERE category = '{category}' AND price > {price}",
                ("What is their average price?", "What do they cost on average?"),
            ),
        ),
    ),
    Conversation(
        "customers_joined_then_orders",
        "SELECT substr(T1.joined_date, 1, 4) AS year, T1.city AS city FROM customers AS T1 JOIN orders AS T2"
        " ON T1.customer_id = T2.customer_id",
        (
            Step(
                _JOINED,
                (
                    "Who became a customer in {year}?",
                    "Show me the customers who signed up in {year}.",
                    "Which customers have been with us since {year}?",
                ),
            ),
            Step(
                _JOINED + " AND city = '{city}'",
                ("Only those living in {city}.", "Just the ones from {city}."),
            ),
            Step(
                "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id"
                " WHERE T2.joined_date LIKE '{year}-%' AND T2.city = '{city}'",
                ("How many orders have they placed?", "How many orders came from them?"),
            ),
        ),
    ),
)

DOMAIN = Domain("retail", SCHEMA, populate, TEMPLATES, CONVERSATIONS)
