//! What the simulated shop sells and where its pages are.

/// The shop's product categories; traits, events and ground truth use this order.
pub const CATEGORIES: [Category; 7] = [
    Category::new("bread", "Bread & Bakery"),
    Category::new("soft_drinks", "Soft Drinks"),
    Category::new("dairy", "Dairy & Eggs"),
    Category::new("produce", "Fruit & Veg"),
    Category::new("snacks", "Snacks"),
    Category::new("household", "Household"),
    Category::new("beauty", "Beauty"),
];

#[derive(Debug, Clone, Copy)]
pub struct Category {
    /// Slug used in URLs, event data and ground-truth column names.
    pub slug: &'static str,
    pub title: &'static str,
}

impl Category {
    const fn new(slug: &'static str, title: &'static str) -> Self {
        Self { slug, title }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub sku: &'static str,
    pub name: &'static str,
    pub slug: &'static str,
    pub price: f64,
    /// Index into [`CATEGORIES`].
    pub category: usize,
}

const fn p(
    sku: &'static str,
    name: &'static str,
    slug: &'static str,
    price: f64,
    category: usize,
) -> Product {
    Product {
        sku,
        name,
        slug,
        price,
        category,
    }
}

pub const PRODUCTS: [Product; 42] = [
    p("SKU-001", "Sourdough loaf", "sourdough-loaf", 3.49, 0),
    p(
        "SKU-002",
        "Seeded batch bread",
        "seeded-batch-bread",
        2.29,
        0,
    ),
    p(
        "SKU-003",
        "All-butter croissants 4x",
        "croissants-4",
        2.75,
        0,
    ),
    p("SKU-004", "Rye bread", "rye-bread", 2.95, 0),
    p("SKU-005", "Bagels 5x", "bagels-5", 1.95, 0),
    p("SKU-006", "Brioche buns 6x", "brioche-buns-6", 2.10, 0),
    p(
        "SKU-101",
        "Sparkling water 6x",
        "sparkling-water-6",
        4.99,
        1,
    ),
    p("SKU-102", "Cola 2l", "cola-2l", 2.15, 1),
    p("SKU-103", "Orange juice 1l", "orange-juice-1l", 1.85, 1),
    p("SKU-104", "Ginger beer 4x", "ginger-beer-4", 3.60, 1),
    p(
        "SKU-105",
        "Elderflower presse",
        "elderflower-presse",
        2.80,
        1,
    ),
    p("SKU-106", "Lemonade 1.5l", "lemonade-1-5l", 1.40, 1),
    p("SKU-201", "Greek yoghurt", "greek-yoghurt", 2.29, 2),
    p("SKU-202", "Whole milk 2l", "whole-milk-2l", 1.55, 2),
    p("SKU-203", "Mature cheddar", "mature-cheddar", 3.75, 2),
    p(
        "SKU-204",
        "Free-range eggs 12x",
        "free-range-eggs-12",
        3.90,
        2,
    ),
    p("SKU-205", "Salted butter", "salted-butter", 2.45, 2),
    p("SKU-206", "Oat drink 1l", "oat-drink-1l", 1.95, 2),
    p("SKU-301", "Apples 1kg", "apples-1kg", 2.99, 3),
    p("SKU-302", "Bananas 5x", "bananas-5", 0.95, 3),
    p("SKU-303", "Avocados 2x", "avocados-2", 2.50, 3),
    p("SKU-304", "Vine tomatoes", "vine-tomatoes", 1.99, 3),
    p("SKU-305", "Baby spinach", "baby-spinach", 1.60, 3),
    p("SKU-306", "Strawberries 400g", "strawberries-400g", 3.25, 3),
    p("SKU-401", "Sea salt crisps", "sea-salt-crisps", 1.79, 4),
    p(
        "SKU-402",
        "Dark chocolate 70%",
        "dark-chocolate-70",
        2.20,
        4,
    ),
    p("SKU-403", "Salted popcorn", "salted-popcorn", 1.50, 4),
    p("SKU-404", "Mixed nuts 200g", "mixed-nuts-200g", 3.40, 4),
    p("SKU-405", "Oat cookies", "oat-cookies", 1.85, 4),
    p("SKU-406", "Tortilla chips", "tortilla-chips", 1.65, 4),
    p("SKU-501", "Dish soap", "dish-soap", 2.49, 5),
    p("SKU-502", "Laundry liquid 1.3l", "laundry-liquid", 7.50, 5),
    p("SKU-503", "Kitchen roll 4x", "kitchen-roll-4", 4.25, 5),
    p("SKU-504", "Bin bags 20x", "bin-bags-20", 2.95, 5),
    p("SKU-505", "Surface spray", "surface-spray", 2.10, 5),
    p("SKU-506", "Toilet tissue 9x", "toilet-tissue-9", 5.80, 5),
    p("SKU-601", "Shampoo 400ml", "shampoo-400ml", 4.50, 6),
    p("SKU-602", "Hand cream", "hand-cream", 6.95, 6),
    p("SKU-603", "Toothpaste", "toothpaste", 2.60, 6),
    p("SKU-604", "Shower gel", "shower-gel", 3.20, 6),
    p("SKU-605", "Face moisturiser", "face-moisturiser", 12.99, 6),
    p("SKU-606", "Lip balm", "lip-balm", 3.49, 6),
];

/// The products of one category.
pub fn products_of(category: usize) -> &'static [Product] {
    let first = PRODUCTS
        .iter()
        .position(|p| p.category == category)
        .expect("every category has products");
    let len = PRODUCTS[first..]
        .iter()
        .take_while(|p| p.category == category)
        .count();
    &PRODUCTS[first..first + len]
}

/// Search terms people type, per category.
pub const SEARCH_TERMS: [&[&str]; 7] = [
    &["sourdough", "bread", "gluten free bread", "croissants"],
    &["sparkling water", "cola", "juice", "ginger beer"],
    &["milk", "cheese", "eggs", "yoghurt", "oat milk"],
    &["apples", "bananas", "avocado", "fruit", "salad"],
    &["crisps", "chocolate", "nuts", "popcorn"],
    &["washing up liquid", "laundry", "kitchen roll", "cleaning"],
    &["shampoo", "moisturiser", "toothpaste", "hand cream"],
];

/// Content pages (recipes and help), reached from search engines and referrals.
pub const CONTENT_PAGES: [(&str, &str); 6] = [
    (
        "/recipes/easy-sourdough-toast",
        "Easy sourdough toast ideas",
    ),
    ("/recipes/summer-fruit-salad", "Summer fruit salad"),
    (
        "/recipes/party-snack-board",
        "The perfect party snack board",
    ),
    ("/help/delivery", "Delivery and collection"),
    ("/help/returns", "Returns and refunds"),
    ("/about", "About Acme Grocer"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_has_products_and_skus_are_unique() {
        for (index, _) in CATEGORIES.iter().enumerate() {
            let products = products_of(index);
            assert_eq!(products.len(), 6);
            assert!(products.iter().all(|p| p.category == index));
        }
        let mut skus: Vec<_> = PRODUCTS.iter().map(|p| p.sku).collect();
        skus.sort_unstable();
        skus.dedup();
        assert_eq!(skus.len(), PRODUCTS.len());
    }
}
