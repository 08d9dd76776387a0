"""Haven's synthetic benign texts: templated instructions and short replies, generated from a fixed seed.

Harmful sets are mostly imperatives ("Write a ...", "Develop a strategy for ...") and short compliances
("Sure, here is a tutorial on how to ..."), and the benign assistant-style sets whose licences allow
training are small, so a classifier learns that the imperative or the opener itself is suspicious. These
texts (Haven's own) teach it otherwise: the same verbs, shapes and openers, about ordinary subjects. Being
generated, they are the same on every machine; they are split like every other source.
"""

from __future__ import annotations

import random

__all__ = ["benign_instructions", "benign_replies"]

_VERBS = (
    "Write", "Create", "Develop", "Design", "Generate", "Compose", "Draft", "Produce", "Outline", "Prepare",
    "Give me", "Provide", "Suggest", "Come up with", "Put together", "Build", "Make", "Plan",
)
_THINGS = (
    "a poem", "a short story", "an essay", "a blog post", "a tutorial", "a step-by-step guide", "a script",
    "a Python program", "a plan", "a strategy", "a recipe", "an email", "a speech", "a social media post",
    "a website layout", "a mobile app idea", "an algorithm", "a board game", "a lesson plan",
    "a marketing campaign", "a checklist", "a workout routine", "a budget", "a cover letter", "a song",
    "a product description", "a travel itinerary", "a study schedule", "a presentation", "a newsletter",
    "a podcast outline", "a quiz", "a press release", "a business proposal", "a bedtime story",
    "a haiku", "a SQL query", "a JavaScript function", "a user manual", "a FAQ page",
)
_SUBJECTS = (
    "gardening for beginners", "saving money on groceries", "the water cycle", "climate change", "photosynthesis",
    "a trip to Japan", "learning to play guitar", "remote work productivity", "healthy breakfast ideas",
    "the history of the Roman Empire", "how vaccines train the immune system", "starting a small bakery",
    "caring for a new puppy", "time management for students", "renewable energy", "the solar system",
    "writing a good resume", "public speaking", "a friendly robot", "a rainy afternoon", "our school science fair",
    "recycling at home", "a local farmers market", "the benefits of reading", "machine learning basics",
    "sorting a list of numbers", "tracking daily habits", "a community clean-up day", "customer onboarding",
    "improving sleep", "a family reunion", "learning Spanish", "first aid basics", "the French Revolution",
    "ocean conservation", "a new coffee shop", "home workouts without equipment", "team building",
    "the stock market for beginners", "meal prep for the week", "a children's birthday party", "bird watching",
    "a mystery set in a lighthouse", "the life of honeybees", "volunteering", "a job interview",
    "planning a wedding", "electric cars", "an online book club", "growing tomatoes on a balcony",
    "reducing screen time", "a museum visit", "the importance of sleep", "open source software",
    "a dragon who is afraid of the dark", "making sourdough bread", "a hiking trip in the mountains",
    "budgeting for university", "writing clean code", "the history of jazz", "a charity fundraiser",
    "cybersecurity awareness for employees", "protecting your accounts with two-factor authentication",
    "the causes of World War I", "how elections are run fairly", "respecting other cultures",
    "mental health at work", "talking to kids about feelings", "safe cycling in a city",
)
_QUESTIONS = (
    "How do I {x}?", "What is the best way to {x}?", "Can you explain how to {x}?", "Teach me how to {x}.",
    "Tell me how to {x}.", "Show me how to {x}.", "What steps should I follow to {x}?", "Help me {x}.",
)
_TASKS = (
    "improve my writing", "learn to code in Python", "train for a 5k run", "bake a chocolate cake",
    "negotiate a higher salary", "organize my closet", "start a podcast", "fix a leaky faucet",
    "make friends in a new city", "prepare for a math exam", "set up a home network", "grow herbs indoors",
    "write a business plan", "back up my photos", "reduce my electricity bill", "memorize a speech",
    "clean a cast iron pan", "change a flat tire", "meditate", "invest for retirement", "teach my dog to sit",
    "paint a room", "get better at chess", "plan a road trip", "write a thank-you note", "speed up my laptop",
    "cook rice perfectly", "apologize to a friend", "build a birdhouse", "file my taxes on time",
)


_NOUNS = (
    "primates", "volcanoes", "the moon", "photosynthesis", "the internet", "a typewriter", "a smartphone", "bees",
    "the Great Wall of China", "the Amazon rainforest", "democracy", "inflation", "a balanced diet", "coral reefs",
    "electric guitars", "the Renaissance", "Shakespeare", "the periodic table", "black holes", "the human heart",
    "recycling", "solar panels", "a savings account", "compound interest", "a resume", "a cover letter",
    "the Olympic Games", "football", "chess", "jazz", "classical music", "impressionist painting", "pasta sauce",
    "pizza dough", "green tea", "coffee", "a marathon", "yoga", "sleep", "a job interview", "teamwork",
    "leadership", "customer service", "a landing page", "a mobile game", "cloud computing", "databases",
    "machine learning", "a neural network", "CSS", "HTML", "Python", "JavaScript", "sorting algorithms",
    "binary search", "the water cycle", "earthquakes", "hurricanes", "glaciers", "deserts", "the ocean",
    "whales", "penguins", "tigers", "dogs", "cats", "horses", "dinosaurs", "fossils", "the Roman Empire",
    "ancient Egypt", "the Industrial Revolution", "the printing press", "the telephone", "airplanes", "trains",
    "electric cars", "bicycles", "public transport", "city parks", "libraries", "museums", "a birthday party",
    "a wedding", "a picnic", "camping", "hiking", "gardening", "houseplants", "tomatoes", "apples", "bread",
    "cheese", "chocolate", "vegetables", "vitamins", "exercise", "meditation", "friendship", "kindness",
    "gratitude", "happiness", "creativity", "curiosity", "time management", "procrastination", "a budget",
    "taxes", "a small business", "marketing", "advertising", "social media", "a newsletter", "a podcast",
    "a novel", "poetry", "a fairy tale", "a superhero", "a robot", "space travel", "Mars", "the solar system",
    "stars", "rainbows", "the seasons", "autumn", "winter", "spring", "summer", "the weather", "clouds",
    "a thunderstorm", "electricity", "magnets", "gravity", "light", "sound", "atoms", "molecules", "DNA",
    "cells", "vaccines", "the immune system", "the brain", "memory", "language learning", "grammar",
    "punctuation", "a metaphor", "a simile", "a haiku", "a limerick", "an analogy", "a slogan", "a logo",
    "a brand", "a product launch", "a startup", "remote work", "online classes", "homework", "exams",
    "a science fair", "a school trip", "a family dinner", "a road trip", "a hotel", "a flight", "a train ride",
    "a city guide", "Paris", "Tokyo", "New York", "Kenya", "Brazil", "Canada", "Australia", "India", "Mexico",
    "renewable energy", "wind turbines", "climate", "air pollution", "plastic waste", "composting", "water",
    "a password", "two-factor authentication", "backups", "spreadsheets", "email etiquette", "a meeting agenda",
    "a presentation", "a speech", "a debate", "an argument essay", "a book review", "a movie review",
    "a restaurant", "a recipe", "a smoothie", "a salad", "soup", "a cake", "cookies", "a family tree",
)
_SHAPES = (
    "Name three {n}-related facts.", "List five interesting facts about {n}.", "Give one advantage of {n}.",
    "Give an example of {n} in everyday life.", "Describe {n} in three sentences.", "Explain {n} to a child.",
    "Compare {n} and {m}.", "What is the difference between {n} and {m}?", "Write a haiku about {n}.",
    "Generate a metaphor for {n}.", "Come up with a slogan about {n}.", "Summarize the history of {n}.",
    "Classify {n} as either natural or man-made.", "Create a quiz question about {n}.",
    "Suggest three ways to learn more about {n}.", "Why is {n} important?", "How does {n} work?",
    "What are the main features of {n}?", "Who invented {n}?", "Tell me a fun fact about {n}.",
    "Construct a sentence using the word '{n}'.", "Rewrite this sentence in a formal tone: I love {n}.",
    "Translate 'I like {n}' into French.", "Identify the main benefit of {n}.", "Predict the future of {n}.",
    "Brainstorm a title for an article about {n}.", "Create a short dialogue about {n}.",
    "Make a list of items needed for {n}.", "Describe what it feels like to see {n} for the first time.",
    "Evaluate the pros and cons of {n}.", "Find a word that rhymes with {n}.", "Design a poster about {n}.",
    "Develop a lesson plan about {n}.", "Create a step-by-step guide to {n}.", "Write a tweet about {n}.",
    "Provide a definition of {n}.", "Generate three questions about {n}.", "Write a product review of {n}.",
)


def benign_instructions(count: int = 3000, seed: int = 7) -> list[str]:
    """Benign imperatives and questions in the shapes harmful requests take."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        roll = rng.random()
        if roll < 0.45:
            text = f"{rng.choice(_VERBS)} {rng.choice(_THINGS)} about {rng.choice(_SUBJECTS + _NOUNS)}."
            if rng.random() < 0.3:
                text = text[:-1] + rng.choice((" for my class.", " in simple words.", " for a beginner.",
                                               " that is fun to read.", ", under 200 words."))
        elif roll < 0.85:
            noun, other = rng.sample(_NOUNS, 2)
            text = rng.choice(_SHAPES).format(n=noun, m=other)
        else:
            text = rng.choice(_QUESTIONS).format(x=rng.choice(_TASKS))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


_OPENERS = ("Sure, here is", "Sure! Here is", "Of course, here is", "Here is", "Absolutely, here is",
            "Certainly! Here is", "Sure, here's", "Okay, here is", "Great question! Here is", "Happy to help. Here is")
_LISTS = ("Here are three {n}-related ideas: {a}, {b} and {c}.", "Here are a few facts about {n}.",
          "Here are some tips: start small, practise daily, and ask for feedback.", "Hello! How can I help you today?",
          "Hi there! What would you like to know about {n}?", "Thanks for asking about {n}.",
          "Step 1: gather what you need. Step 2: follow the instructions for {n}. Step 3: review the result.",
          "First, read about {n}. Then, try it yourself. Finally, share what you learned.",
          "Good idea! {n} is a great topic.", "That's a great question about {n}.", "I hope this helps!",
          "Let me know if you want more detail about {n}.", "In short, {n} matters because it affects daily life.")


def benign_replies(count: int = 1200, seed: int = 11) -> list[str]:
    """Short, ordinary replies: harmful replies in the public sets are short compliances ("Sure, here is a
    tutorial on how to make a bomb"), so short benign ones with the same openers are needed for contrast."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        if rng.random() < 0.5:
            text = f"{rng.choice(_OPENERS)} {rng.choice(_THINGS)} about {rng.choice(_SUBJECTS + _NOUNS)}"
            text += rng.choice((".", ":", "!", ". I hope you enjoy it.", ". Let me know if you want changes."))
        else:
            a, b, c, n = rng.sample(_NOUNS, 4)
            text = rng.choice(_LISTS).format(n=n, a=a, b=b, c=c)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
