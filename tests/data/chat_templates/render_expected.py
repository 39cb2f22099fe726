#!/usr/bin/env python3
"""Writes expected/*.txt: each template here rendered by Jinja2 exactly as transformers'
apply_chat_template renders it (transformers.utils.chat_template_utils._compile_jinja_template:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension, tojson = json.dumps(ensure_ascii=False, ...), raise_exception, strftime_now).

Usage: python3 render_expected.py   (needs python3-jinja2; run from any directory)
"""
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))

# model file -> (bos_token, eos_token), from each model's tokenizer_config.json.
MODELS = {
    "llama-3.1-8b-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2-3b-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2.5-7b-instruct": (None, "<|im_end|>"),
    "mistral-7b-instruct-v0.3": ("<s>", "</s>"),
    "gemma-2-2b-it": ("<bos>", "<eos>"),
    "gemma-3-it": ("<bos>", "<eos>"),
}


def compile_template(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        raise RuntimeError("the expected outputs pass date_string; strftime_now is not called")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def main():
    conversation = json.load(open(os.path.join(HERE, "conversation.json")))
    variants = {
        # name -> messages
        "": conversation["messages"],
        ".no_system": conversation["messages"][1:],
    }
    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    for model, (bos, eos) in MODELS.items():
        template = compile_template(open(os.path.join(HERE, model + ".jinja")).read())
        for suffix, messages in variants.items():
            for generation in (True, False):
                name = "%s%s.%s.txt" % (model, suffix, "gen" if generation else "nogen")
                kwargs = dict(messages=messages, add_generation_prompt=generation,
                              date_string=conversation["date_string"], eos_token=eos)
                if bos is not None:
                    kwargs["bos_token"] = bos
                try:
                    text = template.render(**kwargs)
                except jinja2.exceptions.TemplateError as error:
                    name = name[:-4] + ".error.txt"
                    text = str(error)
                with open(os.path.join(HERE, "expected", name), "w", newline="") as out:
                    out.write(text)
                print("wrote expected/" + name, file=sys.stderr)


if __name__ == "__main__":
    main()
